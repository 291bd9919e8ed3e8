/* pyctr's exec shim: the last step between pyctr's container init (or exec joiner) and the container's command.
 *
 * Why it exists (CVE-2019-5736): pyctr's init is the host's Python interpreter. If it execve()d the container's
 * command itself and that command were /proc/self/exe (directly, through a symlink in the image, or as a
 * `#!/proc/self/exe` interpreter), the kernel would start the HOST interpreter inside the container, and code
 * there (a hostile dynamic loader of the image) could keep a descriptor to the host binary and write it later.
 * Instead pyctr execs this program from a sealed memfd (execveat(fd, "", ..., AT_EMPTY_PATH)); from then on
 * /proc/self/exe is that sealed copy, so whatever the command resolves to, it is never a host file, and the
 * seals refuse every write to it.
 *
 * Protocol: argv = {MARK, report fd (decimal), path, command argv...}; envp is the command's environment.
 * The report fd is left open (inheritable) for us; we make it close-on-exec, then execve(path, argv + 3, envp).
 * On failure we write `E{"errno":N}` to the report fd (pyctr decodes it into Docker's 126/127 errors) and exit
 * 127 for ENOENT, 126 otherwise. Run any other way (the container running /proc/self/exe), it refuses. */
#include "syscall.h"

#define MARK "pyctr-exec-shim"

static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int parse_fd(const char *s)
{
	long n = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > 65535)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return (int)n;
}

static void report_errno(int fd, long err)
{
	static const char head[] = "E{\"errno\":";
	char buf[32], digits[12];
	int len, n = 0;

	for (len = 0; head[len]; len++)
		buf[len] = head[len];
	do
		digits[n++] = (char)('0' + err % 10);
	while ((err /= 10) && n < 11);
	while (n)
		buf[len++] = digits[--n];
	buf[len++] = '}';
	sys_write(fd, buf, len);
}

static void refuse(void)
{
	static const char message[] = "pyctr-exec-shim: this is pyctr's exec shim (/proc/self/exe of a container's "
				      "process), not a command\n";
	sys_write(2, message, sizeof(message) - 1);
	sys_exit(126);
}

__attribute__((noreturn, used)) void shim_main(long *stack)
{
	long argc = stack[0];
	char **argv = (char **)(stack + 1);
	char **envp = argv + argc + 1;
	int report;
	long result;

	if (argc < 4 || !same(argv[0], MARK) || (report = parse_fd(argv[1])) < 0)
		refuse();
	if (sys_fcntl(report, F_SETFD, FD_CLOEXEC) < 0)
		sys_exit(125);
	result = sys_execve(argv[2], argv + 3, envp);
	report_errno(report, -result);
	sys_exit(result == -ENOENT ? 127 : 126);
}

PYCTR_START(shim_main)
