/*
 * agent.h: what the two files of codecanvas-sandbox-agent share — agent.c (PID 1: the host's
 * requests, spawning, reaping, files) and agent_sudo.c (the `sudo` channel: the agent's server
 * side and the client side that runs when the binary is called as sudo).  Internal to the
 * agent; libc only.
 */
#ifndef CC_AGENT_H
#define CC_AGENT_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

/* What a spawned child needs between clone and exec.  It runs on the agent's spawn stack but shares our
 * memory (CLONE_VM) while we are suspended (CLONE_VFORK), so it reports a failure before exec
 * through err instead of a pipe.  A fork would copy the page tables and then take a
 * copy-on-write fault for every page either side touches before the exec: measured here,
 * fork + exec + exit of /bin/true took 2.2-2.4 ms and this 1.6 ms. */
typedef struct {
  char **av, **envp;
  const char *cwd;
  int in, out, err_fd, slave; /* slave >= 0: a pty, made the controlling terminal */
  int as_user;                /* the agent is root: switch to uid 1000 first */
  int err;                    /* errno of the step that failed; 0 when exec succeeded */
} spawn_args;

/* Starts a->av as a child in its own session (clone(CLONE_VM|CLONE_VFORK) on the agent's
 * spawn stack: returns once the child has exec'd or failed).  Returns the pid, or -1; a->err
 * is the errno of a failure (0 when exec succeeded). */
pid_t agent_spawn(spawn_args *a);

/* Splits a payload into at most max NUL-terminated strings; returns the number found, or -1
 * when the last one is not terminated inside len. */
int agent_split(char *p, size_t len, char **out, int max);

#define AGENT_SUDO_MAX 32 /* sudo commands at once per sandbox */

/* Server side (agent_sudo.c), used by agent.c's loop: agent_sudo_init listens on the sudo
 * socket (root inside only); agent_sudo_pollfds fills pf (room for 1 + AGENT_SUDO_MAX) with
 * the listening socket and each connection and returns how many; agent_sudo_serve handles the
 * revents of those n entries; agent_sudo_reaped answers the caller of a sudo command that
 * ended (returns 1 when pid was one). */
void agent_sudo_init(int listen_too);
int agent_sudo_pollfds(struct pollfd *pf);
void agent_sudo_serve(const struct pollfd *pf, int n);
int agent_sudo_reaped(pid_t pid, int st);

/* Client side: main() of the binary when called as `sudo`; returns the exit status. */
int agent_sudo_main(int argc, char **argv);

#endif
