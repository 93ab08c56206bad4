-- Phase 4: each dh_task becomes a task of the workflow its dh_workflow
-- became (phase 3B); the whole dh_task row is kept in `metadata`.

INSERT INTO tasks (id, workflow_id, code, title, metadata)
SELECT id, plan_uuid('dh_workflow', workflow_id), code, title, jsonb
FROM dh_task_jsonb;
