/* Recursive watching of directory trees with inotify, driven by libuv.
 *
 * Why a raw inotify descriptor under uv_poll_t instead of uv_fs_event_t: on Linux
 * uv_fs_event reports neither IN_CLOSE_WRITE (a file finished being written) nor
 * IN_Q_OVERFLOW (events were lost), and it holds one inotify instance per watch;
 * one descriptor for all watches gives us both events and a single queue. */
#ifndef CK_WATCH_H
#define CK_WATCH_H

#include <stddef.h>
#include <uv.h>

/* A regular file was written, renamed in, or found by a scan (initial = first scan);
 * st is its lstat. */
struct stat;
typedef void (*ck_watch_file_fn)(void *ctx, int root, const char *path, const struct stat *st, int initial);

struct ck_watch;

int ck_watch_init(uv_loop_t *loop, ck_watch_file_fn fn, void *ctx, struct ck_watch **out);

/* Watch a tree (events = 0: rescans only) and scan it, reporting every file. */
int ck_watch_add_root(struct ck_watch *w, int root, const char *path, int recursive, int events);

/* Stop watching a tree. */
void ck_watch_remove_root(struct ck_watch *w, int root);

/* Walk every tree again, off the loop thread: add watches missing (new directories,
 * lost events) and report every file; then call done (if not NULL). A rescan asked
 * for while one is still walking is dropped (the running one covers it). */
void ck_watch_rescan(struct ck_watch *w, void (*done)(void *ctx), void *ctx);

/* 1 while a rescan is walking. */
int ck_watch_rescanning(const struct ck_watch *w);

/* Directories watched with inotify. */
size_t ck_watch_dirs(const struct ck_watch *w);

/* Close the inotify descriptor and free (the poll handle is closed on the loop). */
void ck_watch_close(struct ck_watch *w);

#endif
