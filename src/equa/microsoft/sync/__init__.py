"""Member sync: plan (pure), resolve, apply in batches, runs, flagged members, and the organization's sync settings.

Interfaces for other packages (routes, pages, CLI), all services that only add/flush in the caller's session:
- runs.request_sync(session, organization, actor, dry_run, trigger) -> SyncRun: the active run, or a new queued
  one handed to the task broker after the caller commits. trigger is "api", "web", "schedule" or "cli".
- runs.get_run(session, org_id, run_id), runs.last_run, runs.list_runs(session, org_id, cursor=, limit=),
  runs.list_outcomes(session, run, outcome=, cursor=, limit=) -> (rows, next_cursor).
- runs.wait_for_run(session_factory, run_id, timeout) -> SyncRun | None (None: still going after timeout).
- flagged.list_flagged / invite_flagged / dismiss_flagged; sync_settings.get_sync_settings / update_sync_settings.

Running a sync (tasks.py calls execute.execute_run): inputs -> plan (pure) -> apply (Graph writes) -> recorder
(outcomes, links, flags, audit); lifecycle holds claim, heartbeat, finish and abandon; policy is the one table of
what a Graph error does to a run (retry, re-queue, or fail it).
"""
