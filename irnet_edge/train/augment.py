"""Batched augmentation on uint8 tensors (on whatever device holds the data): random crop after zero
padding, and horizontal flips. Same semantics as torchvision's RandomCrop(padding=p) + RandomHorizontalFlip,
without per-image Python work."""
import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    if padding:
        padded = F.pad(images, (padding, padding, padding, padding))
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(images.device)
        rows = (offsets[0][:, None] + torch.arange(h, device=images.device))[:, :, None]
        cols = (offsets[1][:, None] + torch.arange(w, device=images.device))[:, None, :]
        batch = torch.arange(n, device=images.device)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(images.device)
        images = torch.where(mask[:, None, None, None], images.flip(3), images)
    return images.contiguous()
