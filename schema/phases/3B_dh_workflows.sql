-- Phase 3B: each dh_workflow becomes a workflow whose definition holds
-- every dh_workflow column, "source": "dh_workflow", and its use case's
-- code, domain id, domain code and name. The id is derived from the
-- dh_workflow's id, so tasks (phase 4) can find it.

INSERT INTO workflows (id, name, description, definition, status, is_public, created_at, updated_at)
SELECT plan_uuid('dh_workflow', w.id),
       w.name,
       w.description,
       CASE WHEN uc.id IS NULL
            THEN json_set(w.jsonb, '$.source', 'dh_workflow')
            ELSE json_set(w.jsonb, '$.source', 'dh_workflow',
                          '$.use_case_code', uc.code,
                          '$.domain_id', uc.domain_id,
                          '$.domain_code', d.code,
                          '$.domain_name', d.name)
       END,
       'active',
       1,
       w.created_at,
       w.updated_at
FROM dh_workflow_jsonb w
LEFT JOIN dh_use_case uc ON uc.id = w.use_case_id
LEFT JOIN dh_domain d ON d.id = uc.domain_id;
