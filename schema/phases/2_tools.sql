-- Phase 2: every dh_tool row becomes a tool. id and name stay columns;
-- every other column goes into `metadata`, typed as Postgres's to_jsonb
-- would type it (dh_tool_jsonb.jsonb is that row's JSON).

INSERT INTO tools (id, name, metadata)
SELECT id, name, json_remove(jsonb, '$.id', '$.name')
FROM dh_tool_jsonb;
