-- A running run says it is alive every 15 seconds (`sync::engine::with_heartbeat`), so that a
-- run whose process died shows as stale in `sync status` and /metrics within a minute, and the
-- next run records it as ended when it was last alive instead of at its own start.
alter table sync_run add column heartbeat_at timestamptz;
update sync_run set heartbeat_at = coalesce(finished_at, started_at);
