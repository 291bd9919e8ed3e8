/* Raw Linux system calls for freestanding static programs (no libc): x86_64 and aarch64.
 *
 * Why not libc: the exec shim must be one static ELF with no dynamic loader and no library, so that running
 * it needs nothing from the container's filesystem (the loader and libraries there belong to the image). */
#ifndef PYCTR_SYSCALL_H
#define PYCTR_SYSCALL_H

#if defined(__x86_64__)
#define NR_write 1
#define NR_fcntl 72
#define NR_execve 59
#define NR_exit_group 231
static inline long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
/* The kernel enters at _start with the stack holding argc, argv..., NULL, envp..., NULL. */
#define PYCTR_START(main_fn)                                                                              \
	__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call " #main_fn \
		"\n hlt\n");
#elif defined(__aarch64__)
#define NR_write 64
#define NR_fcntl 25
#define NR_execve 221
#define NR_exit_group 94
static inline long sys3(long n, long a, long b, long c)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
#define PYCTR_START(main_fn) \
	__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x0, sp\n bl " #main_fn "\n brk #0\n");
#else
#error "pyctr's exec shim supports x86_64 and aarch64"
#endif

#define F_SETFD 2
#define FD_CLOEXEC 1
#define ENOENT 2

static inline long sys_write(int fd, const void *buf, unsigned long len)
{
	return sys3(NR_write, fd, (long)buf, (long)len);
}

static inline long sys_fcntl(int fd, int cmd, long arg)
{
	return sys3(NR_fcntl, fd, cmd, arg);
}

static inline long sys_execve(const char *path, char *const argv[], char *const envp[])
{
	return sys3(NR_execve, (long)path, (long)argv, (long)envp);
}

static inline __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys3(NR_exit_group, code, 0, 0);
}

static inline unsigned long cstrlen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

#endif
