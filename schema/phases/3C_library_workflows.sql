-- Phase 3C: the Medical Affairs workflows of the operational-library
-- files, linked to their JTBD. A workflow's id is derived from its
-- workflow_id: the same workflow_id twice is the same workflow, and the
-- second is not inserted (the phase's conflict check names it).
--
-- Policy :existing_library_workflow decides what happens to a library
-- workflow already in `workflows` (same workflow_id, a source like
-- '%Operational Library%'):
--   fail  import it anyway; the conflict check fails and names the rows
--   skip  leave the existing row, import only the missing ones

WITH library AS (
  SELECT l.strategic_priority AS sp,
         w.value AS workflow,
         json_extract(w.value, '$.workflow_id') AS workflow_id,
         json_extract(w.value, '$.jtbd_id') AS jtbd_code,
         json_extract(w.value, '$.workflow_name') AS name,
         l._file AS file, j.key AS jtbd_pos, w.key AS workflow_pos
  FROM seed_library l, json_each(l.jtbds) j, json_each(j.value, '$.workflows') w
),
existing AS (
  SELECT json_extract(definition, '$.workflow_id') AS workflow_id
  FROM workflows
  WHERE json_extract(definition, '$.source') LIKE '%Operational Library%'
),
linked AS (
  SELECT library.*,
         (SELECT jl.id FROM jtbd_library jl WHERE jl.jtbd_code = library.jtbd_code
          ORDER BY jl.rowid DESC LIMIT 1) AS jtbd_library_id
  FROM library
  WHERE :existing_library_workflow = 'fail'
     OR library.workflow_id NOT IN (SELECT workflow_id FROM existing WHERE workflow_id IS NOT NULL)
)
INSERT INTO workflows (id, name, description, definition, status, is_public, created_at, updated_at)
SELECT plan_uuid('library_workflow', workflow_id),
       name,
       name || ' for ' || jtbd_code || ' ('
         || coalesce(json_extract(workflow, '$.duration'), '') || ', '
         || coalesce(json_extract(workflow, '$.phase_count'), '') || ' phases, '
         || coalesce(json_extract(workflow, '$.task_count'), '') || ' tasks)',
       CASE WHEN jtbd_library_id IS NULL
            THEN json_set(workflow, '$.strategic_priority', sp)
            ELSE json_set(workflow, '$.jtbd_library_id', jtbd_library_id, '$.strategic_priority', sp)
       END,
       'active',
       1,
       :pulled_at,
       :pulled_at
FROM linked
WHERE true
ORDER BY file, jtbd_pos, workflow_pos
ON CONFLICT (id) DO NOTHING;
