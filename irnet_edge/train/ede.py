"""The EDE schedule: t grows from T_min to T_max geometrically; k = max(1/t, 1)."""
import math
from dataclasses import asdict, dataclass

EDE_PER = ("epoch", "iteration")


@dataclass(frozen=True)
class EDESchedule:
    t_min: float
    t_max: float = 10.0
    per: str = "epoch"  # "iteration" as the official ImageNet code

    def __post_init__(self):
        if self.per not in EDE_PER:
            raise ValueError(f"EDE schedule per must be one of {EDE_PER}, got {self.per!r}")
        if not 0 < self.t_min <= self.t_max:
            raise ValueError(f"EDE needs 0 < t_min <= t_max, got {self.t_min}, {self.t_max}")

    def at(self, step: int, total: int) -> tuple[float, float]:
        """(k, t) for step i of N: t = T_min * 10^((i/N) * log10(T_max/T_min)), k = max(1/t, 1)."""
        t = self.t_min * math.pow(10.0, (step / total) * math.log10(self.t_max / self.t_min))
        return max(1.0 / t, 1.0), t

    def state(self, k: float, t: float) -> dict:
        return {**asdict(self), "k": k, "t": t}
