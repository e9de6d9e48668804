/*
 * syslog_fwd.h - the mount's live copy of the audit trail (audit_syslog).
 *
 * With audit_syslog set, a thread of the process serving the mount sends
 * every audit event, in order, as one RFC 5424 message
 * (audit_format_syslog()) to the local syslog (`local`: a datagram to
 * /dev/log) or to an audit repository over TCP and TLS (`tls://HOST:PORT`,
 * RFC 5425 octet-counted frames; with audit_syslog_cert_file, a client
 * certificate for mutual TLS).  It reads the events from the cache's
 * `audit` table after the forwarding cursor (cache_audit_forwarded()),
 * sends up to a batch, and moves the cursor once the batch is written:
 *
 *      cursor -> walk (read txn) -> frames -> write -> set cursor
 *                                    | fails: close, back off 1s..60s,
 *                                    | reconnect, resend from the cursor
 *
 * So an event waits in LMDB (already durable) while the receiver is
 * away, and nothing is dropped.  On a healthy connection each event is
 * sent once; after a crash of the mount, or a connection that broke
 * while a batch was in flight, that batch may be sent again (at least
 * once).  Before each batch the connection is checked for a close from
 * the receiver, so a receiver that stopped between batches is noticed
 * before anything is written into the void.  One log line per outage
 * and one when it ends; never a path.
 *
 * Lifecycle, in the daemon: tool_syslog_open() before anything reaches
 * a region (a bad CA file or a missing /dev/log stops the mount with one
 * line while stderr is still the user's), tool_syslog_start() once the
 * mount answers, tool_syslog_close() after the unmount event is written.
 */
#ifndef TOOL_SYSLOG_FWD_H
#define TOOL_SYSLOG_FWD_H

struct cache;
struct phi_config;
struct tool_syslog;

/*
 * Check cfg's audit_syslog settings and load the TLS trust (the CA file,
 * or the system's store without one) and the client certificate.  *out is NULL when audit_syslog is
 * unset or audit is off.  0, or -1 after printing one line.  cfg must
 * outlive *out.  Makes no connection.
 */
int tool_syslog_open(struct tool_syslog **out, const struct phi_config *cfg);

/*
 * Forward from a thread of its own; c (open read-write) is borrowed until
 * tool_syslog_close().  NULL s is a no-op.  0, or a negative errno
 * (logged; the mount goes on, events wait).
 */
int tool_syslog_start(struct tool_syslog *s, struct cache *c);

/* Send what is stored if the receiver is there, stop the thread, free
 * s.  NULL is a no-op. */
void tool_syslog_close(struct tool_syslog *s);

#endif
