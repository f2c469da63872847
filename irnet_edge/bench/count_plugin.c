/* SPDX-License-Identifier: GPL-2.0-or-later (QEMU plugins are loaded into QEMU, which is GPL-2.0) */
/* irnet-edge instruction counter: a QEMU TCG plugin (API v1, QEMU 7.2 and later).
 *
 * Counts the guest instructions executed between the first and the last of `marks` calls of the function at
 * `mark` (the model's bench marker, called before its first op and after every op) and writes, to `out`:
 *   marks <n> <count at mark 1> ... <count at mark n>
 *   tb <vaddr> <executions> <fall-throughs> <insn vaddr>...   (one line per block executed while counting)
 * A block is counted whole when it starts; "fall-throughs" counts executions followed by the block at the
 * address right after it, so a branch ending the block was taken (executions - fall-throughs) times. The
 * counts are exact and repeatable: they depend only on the guest code and its input.
 * Usage: -plugin libirnet_count.so,mark=0xADDR,marks=N,out=FILE */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

typedef struct Block {
    uint64_t vaddr;
    uint64_t end;
    uint64_t executions;
    uint64_t fallthroughs;
    size_t n_insns;
    int is_mark;
    struct Block *next;
    uint64_t insns[];
} Block;

static uint64_t mark_addr;
static long marks_expected;
static char out_path[4096];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Block *blocks;
static uint64_t *marks;
static long marks_seen;
static int counting;
static uint64_t total;
static Block *previous;

static void on_exec(unsigned int vcpu, void *udata)
{
    Block *b = udata;
    (void)vcpu;
    if (b->is_mark && marks_seen < marks_expected) {
        marks[marks_seen++] = total;
        counting = marks_seen < marks_expected;
        previous = NULL;
    }
    if (!counting) {
        return;
    }
    if (previous != NULL && previous->end == b->vaddr) {
        previous->fallthroughs++;
    }
    b->executions++;
    total += b->n_insns;
    previous = b;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    const size_t n = qemu_plugin_tb_n_insns(tb);
    Block *b = calloc(1, sizeof *b + n * sizeof b->insns[0]);
    size_t i;
    (void)id;
    if (b == NULL) {
        abort();
    }
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = n;
    for (i = 0; i < n; ++i) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        b->insns[i] = qemu_plugin_insn_vaddr(insn);
        b->end = b->insns[i] + qemu_plugin_insn_size(insn);
    }
    b->is_mark = b->vaddr == mark_addr;
    pthread_mutex_lock(&lock);
    b->next = blocks;
    blocks = b;
    pthread_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void write_report(qemu_plugin_id_t id, void *p)
{
    FILE *f = fopen(out_path, "w");
    const Block *b;
    long i;
    size_t j;
    (void)id;
    (void)p;
    if (f == NULL) {
        fprintf(stderr, "irnet-edge count plugin: cannot write %s\n", out_path);
        return;
    }
    fprintf(f, "marks %ld", marks_seen);
    for (i = 0; i < marks_seen; ++i) {
        fprintf(f, " %" PRIu64, marks[i]);
    }
    fputc('\n', f);
    for (b = blocks; b != NULL; b = b->next) {
        if (b->executions == 0) {
            continue;
        }
        fprintf(f, "tb %" PRIx64 " %" PRIu64 " %" PRIu64, b->vaddr, b->executions, b->fallthroughs);
        for (j = 0; j < b->n_insns; ++j) {
            fprintf(f, " %" PRIx64, b->insns[j]);
        }
        fputc('\n', f);
    }
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_addr = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "marks=", 6) == 0) {
            marks_expected = strtol(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "irnet-edge count plugin: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (mark_addr == 0 || marks_expected < 2 || out_path[0] == '\0') {
        fprintf(stderr, "irnet-edge count plugin: needs mark=ADDR, marks=N (N >= 2) and out=FILE\n");
        return -1;
    }
    marks = calloc((size_t)marks_expected, sizeof *marks);
    if (marks == NULL) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_report, NULL);
    return 0;
}
