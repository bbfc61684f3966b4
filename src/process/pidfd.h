// Thin wrappers over the pidfd system calls (Linux ≥ 5.3), so the rest of the code never names
// a raw syscall. glibc 2.36 declares them in <sys/pidfd.h> without extern "C" guards, hence the
// wrapper. A pidfd refers to one process for its whole life: unlike a pid it cannot be reused,
// so signalling through it can never hit an unrelated process.
#pragma once

extern "C" {
#include <sys/pidfd.h>
}
