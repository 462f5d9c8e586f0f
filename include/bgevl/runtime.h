// Process-wide settings, changed only when the application asks: constructing or loading a model
// leaves them as they are. The CLI and the Python package call these where a user expects it
// (the CLI's --threads; bgevl.set_num_threads in Python).
#pragma once

namespace bgevl {

// Threads for libtorch's intra-op work (at::set_num_threads) and for bgevl's persistent pool that
// decodes, resizes and tokenizes. 0: every core. At most the machine's cores (more only
// oversubscribe them) unless `force`, and never above 1024; else InvalidArgumentError. In a child
// process forked after OpenMP started its threads (multiprocessing's fork, gunicorn
// --preload), libtorch stays at 1 thread: OpenMP cannot restart its pool there.
void set_num_threads(int num_threads, bool force = false);

// The machine's cores (std::thread::hardware_concurrency, at least 1).
int available_cores();

// The size of bgevl's pool (decoding, resizing, tokenizing); every core unless set.
int num_threads();

// glibc: keep freed large blocks in the heap (no per-allocation mmap, no trimming) instead of
// faulting fresh pages in for every layer's activations: 10-20% faster on the CPU. Process-wide
// and permanent (mallopt); a no-op elsewhere.
void tune_cpu_allocator();

}  // namespace bgevl
