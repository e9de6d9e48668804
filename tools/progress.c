/*
 * progress.c - the progress line the long commands (recover, restore,
 * versions, sync, fsck --scrub and --repair, gc) draw on a terminal, and
 * the byte counts they print.
 *
 * The line lives on stderr and only when stderr is a terminal: a pipe or
 * a file gets nothing from here, so what scripts read is the same with
 * or without it.  It is redrawn in place ("\r... ESC[K") at most four
 * times a second, and erased before anything else is printed to the
 * terminal, so it never mixes into other lines: by the command before
 * its own output (tool_progress_end()), by tool_error() and tool_warn(),
 * and by the log sink, for lines the modules log from any thread.  The
 * line drawn and everything written around it are under stderr's stdio
 * lock (flockfile()), which also keeps two threads' writes apart.
 */
#include "cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "phi.h"

#define PROGRESS_NS (UINT64_C(250) * 1000000)

/* Whether a progress line is on the terminal; under stderr's lock.  A
 * flag, not the struct: a command may end with its line erased by an
 * error message, its struct gone, and never call tool_progress_end(). */
static int drawn;

/* Erase the line drawn, if any; stderr's lock held. */
static void erase_locked(void)
{
	if (!drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	drawn = 0;
}

void tool_progress_erase(void)
{
	flockfile(stderr);
	erase_locked();
	funlockfile(stderr);
}

void tool_log_sink(enum phi_log_level level, const char *msg)
{
	flockfile(stderr);
	erase_locked();
	phi_log_sink_stderr(level, msg);
	funlockfile(stderr);
}

void tool_human_size(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void tool_progress_init(struct tool_progress *p, const char *label)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(STDERR_FILENO);
	p->label = label;
	p->start_ns = phi_mono_ns();
}

static void amount(const char *what, uint64_t n, char *buf, size_t len)
{
	if (strcmp(what, "bytes") == 0)
		tool_human_size(n, buf, len);
	else
		snprintf(buf, len, "%" PRIu64, n);
}

/* A new unit is a new phase (gc reads metadata, then deletes): its rate
 * and time left count from now, not from the start of the command. */
static void new_phase(struct tool_progress *p, const char *what,
		      uint64_t now)
{
	if (strncmp(p->what, what, sizeof(p->what) - 1) == 0)
		return;
	snprintf(p->what, sizeof(p->what), "%s", what);
	if (p->last_ns)
		p->start_ns = now;
	p->last_ns = 0;
}

void tool_progress_show(void *ctx, const char *what, uint64_t done,
			uint64_t total)
{
	struct tool_progress *p = ctx;
	uint64_t now = phi_mono_ns();
	double secs, rate;
	char d[32], t[32], r[32], left[32] = "";
	int bytes = strcmp(what, "bytes") == 0;

	if (!p->on)
		return;
	new_phase(p, what, now);
	if (p->last_ns && now - p->last_ns < PROGRESS_NS && done < total)
		return;
	p->last_ns = now;
	secs = (double)(now - p->start_ns) / 1e9;
	rate = secs > 0 ? (double)done / secs : 0;
	amount(what, done, d, sizeof(d));
	amount(what, total, t, sizeof(t));
	amount(what, (uint64_t)rate, r, sizeof(r));
	if (rate > 0 && total > done)
		snprintf(left, sizeof(left), ", %.0f s left",
			 (double)(total - done) / rate);
	flockfile(stderr);
	fprintf(stderr, "\r%s: %s of %s%s%s (%.0f%%), %s/s%s\033[K", p->label,
		d, t, bytes ? "" : " ", bytes ? "" : what,
		total ? 100.0 * (double)done / (double)total : 100.0, r, left);
	fflush(stderr);
	drawn = 1;
	funlockfile(stderr);
}

void tool_progress_drawn(void)
{
	flockfile(stderr);
	fflush(stderr);
	drawn = 1;
	funlockfile(stderr);
}

void tool_progress_end(struct tool_progress *p)
{
	(void)p;	/* one line at a time: whichever is drawn is p's */
	tool_progress_erase();
}
