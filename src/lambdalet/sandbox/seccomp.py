"""The system call filter every namespaces sandbox's runtime runs under, as classic BPF.

The program is built here, on the host, as the bytes of a ``struct sock_filter`` array, and
passed to ``runtime/isolate.py`` in the sandbox's plan; the runtime's process installs it with
``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ...)`` right before exec, after no_new_privs, so
it holds for the runtime and everything it starts. Hand-built (as Docker's and Firecracker's
profiles boil down to) rather than through libseccomp: no dependency, and the program is
small enough to read.

What it does, in order:

1. a call made under another architecture than the host's (a 32-bit ``int 0x80`` on x86-64)
   kills the process: its system call numbers mean other things;
2. on x86-64, x32 system calls (numbers with bit 30 set) fail with EPERM;
3. the calls in :data:`DENIED` fail with EPERM: mounting, pivoting, tracing other processes,
   loading kernels, modules and BPF programs, the kernel keyring, rebooting, swap, entering
   or making namespaces, file handles, userfaultfd, accounting, quotas, setting the clock,
   port I/O, the kernel log, other processes' memory and io_uring (whose requests would not
   pass through this filter);
4. ``clone`` with any namespace flag fails with EPERM (fork, vfork and threads go through);
   ``clone3``, whose flags sit in memory a filter cannot read, fails with ENOSYS, on which
   glibc and the runtimes fall back to ``clone``;
5. ``socket(AF_PACKET, ...)`` and any ``SOCK_RAW`` socket fail with EPERM (raw IP sockets
   also need CAP_NET_RAW, which the sandbox does not have);
6. everything else is allowed.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
import sys

# <linux/filter.h> and <linux/bpf_common.h>
BPF_LD = 0x00
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_W = 0x00
BPF_ABS = 0x20
BPF_K = 0x00
BPF_AND = 0x50
BPF_JEQ = 0x10
BPF_JGE = 0x30
BPF_JSET = 0x40

# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# <linux/audit.h>
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# Offsets in struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
NR_OFFSET = 0
ARCH_OFFSET = 4
ARGS_OFFSET = 16

CLONE_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
AF_PACKET = 17
SOCK_RAW = 3
SOCK_TYPE_MASK = 0xF  # the rest of socket()'s type is SOCK_NONBLOCK and SOCK_CLOEXEC

DENIED = (
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "reboot",
    "swapon",
    "swapoff",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "acct",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "syslog",
    "vhangup",
    "uselib",
    "_sysctl",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

# System call numbers per architecture (x86-64's own table; AArch64 uses the generic one).
# A call an architecture does not have is simply not listed.
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428,
        "mount_setattr": 442, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "pidfd_getfd": 438, "kcmp": 312, "kexec_load": 246,
        "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
        "add_key": 248, "request_key": 249, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "create_module": 174, "get_kernel_syms": 177,
        "query_module": 178, "reboot": 169, "swapon": 167, "swapoff": 168, "unshare": 272,
        "setns": 308, "open_by_handle_at": 304, "name_to_handle_at": 303, "userfaultfd": 323,
        "acct": 163, "quotactl": 179, "quotactl_fd": 443, "nfsservctl": 180,
        "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "iopl": 172, "ioperm": 173, "lookup_dcookie": 212, "syslog": 103, "vhangup": 153,
        "uselib": 134, "_sysctl": 156, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "clone": 56, "clone3": 435, "socket": 41,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428,
        "mount_setattr": 442, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "pidfd_getfd": 438, "kcmp": 272, "kexec_load": 104,
        "kexec_file_load": 294, "bpf": 280, "perf_event_open": 241, "keyctl": 219,
        "add_key": 217, "request_key": 218, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "unshare": 97,
        "setns": 268, "open_by_handle_at": 265, "name_to_handle_at": 264, "userfaultfd": 282,
        "acct": 89, "quotactl": 60, "quotactl_fd": 443, "nfsservctl": 42,
        "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "lookup_dcookie": 18, "syslog": 116, "vhangup": 58, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "clone": 220, "clone3": 435,
        "socket": 198,
    },
}  # fmt: skip
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}
MAX_JUMP = 255  # a conditional jump's offsets are one byte


class UnsupportedArchitecture(Exception):
    """Raised when lambdalet has no system call table for this machine."""


def supported(machine: str | None = None) -> bool:
    """Whether a filter can be built for this machine (``os.uname().machine``)."""
    return (machine or os.uname().machine) in SYSCALLS


def _arg_offset(index: int) -> int:
    """Where the low 32 bits of argument ``index`` are in struct seccomp_data."""
    offset = ARGS_OFFSET + 8 * index
    return offset + 4 if sys.byteorder == "big" else offset


class _Program:
    """Instructions whose jump targets are labels, resolved when packed."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((BPF_LD | BPF_W | BPF_ABS, 0, 0, offset))

    def and_(self, mask: int) -> None:
        self._code.append((BPF_ALU | BPF_AND | BPF_K, 0, 0, mask))

    def jump(self, op: int, value: int, true: str | int, false: str | int = 0) -> None:
        """A conditional jump to a label, or over a number of instructions (0: the next)."""
        self._code.append((BPF_JMP | op | BPF_K, true, false, value))

    def ret(self, value: int) -> None:
        self._code.append((BPF_RET | BPF_K, 0, 0, value))

    def pack(self) -> bytes:
        packed = []
        for index, (code, true, false, k) in enumerate(self._code):
            offsets = []
            for target in (true, false):
                offset = self._labels[target] - index - 1 if isinstance(target, str) else target
                if not 0 <= offset <= MAX_JUMP:
                    raise ValueError(f"jump of {offset} at instruction {index}")
                offsets.append(offset)
            packed.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k))
        return b"".join(packed)


@functools.lru_cache(maxsize=4)
def build(machine: str | None = None) -> bytes:
    """The filter for this machine (or ``machine``), as packed ``struct sock_filter``s."""
    machine = machine or os.uname().machine
    numbers = SYSCALLS.get(machine)
    if numbers is None:
        raise UnsupportedArchitecture(f"no system call table for {machine}")
    program = _Program()
    program.load(ARCH_OFFSET)
    program.jump(BPF_JEQ, AUDIT_ARCH[machine], 1)
    program.ret(SECCOMP_RET_KILL_PROCESS)
    program.load(NR_OFFSET)
    if machine == "x86_64":
        program.jump(BPF_JGE, X32_SYSCALL_BIT, "deny")
    for name in DENIED:
        if name in numbers:
            program.jump(BPF_JEQ, numbers[name], "deny")
    program.jump(BPF_JEQ, numbers["clone3"], "enosys")
    program.jump(BPF_JEQ, numbers["clone"], "clone")
    program.jump(BPF_JEQ, numbers["socket"], "socket")
    program.ret(SECCOMP_RET_ALLOW)
    # BPF only jumps forward: the argument checks come next, the shared returns last.
    program.label("clone")  # clone(flags, ...) on both architectures
    program.load(_arg_offset(0))
    program.jump(BPF_JSET, CLONE_NAMESPACE_FLAGS, "deny", "allow")
    program.label("socket")  # socket(family, type, protocol)
    program.load(_arg_offset(0))
    program.jump(BPF_JEQ, AF_PACKET, "deny")
    program.load(_arg_offset(1))
    program.and_(SOCK_TYPE_MASK)
    program.jump(BPF_JEQ, SOCK_RAW, "deny", "allow")
    program.label("allow")
    program.ret(SECCOMP_RET_ALLOW)
    program.label("deny")
    program.ret(SECCOMP_RET_ERRNO | errno.EPERM)
    program.label("enosys")
    program.ret(SECCOMP_RET_ERRNO | errno.ENOSYS)
    return program.pack()


def unavailable_reason() -> str:
    """Why no filter can be installed on this host, or "" when one can."""
    machine = os.uname().machine
    if not supported(machine):
        return f"no system call table for {machine}"
    try:
        with open("/proc/self/status") as status:
            if "\nSeccomp:" not in status.read():
                return "this kernel has no seccomp (CONFIG_SECCOMP)"
    except OSError as error:
        return f"cannot read /proc/self/status: {error.strerror}"
    return ""
