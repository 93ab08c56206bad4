-- Phase 1: the seven strategic priorities from the seeds, and each JTBD's
-- link to its priority.
--
-- Policy :jtbd_sp_link decides where a JTBD's priority comes from:
--   require_agreement  the library files, and the `function` column must not
--                      name another priority (a JTBD with two candidates is
--                      left unlinked and named by the phase's conflict check)
--   library            the library files alone
--   function           the `function` column alone

INSERT INTO strategic_priorities (id, code, name, description, color, icon, position, created_at)
SELECT plan_uuid('strategic_priority', code), code, name, description, color, icon, position, :pulled_at
FROM seed_strategic_priorities;

WITH listed AS (
  -- (JTBD code, priority) for every JTBD a library file lists.
  SELECT DISTINCT json_extract(j.value, '$.jtbd_id') AS code, l.strategic_priority AS sp
  FROM seed_library l, json_each(l.jtbds) j
),
candidate AS (
  SELECT jl.id, listed.sp
  FROM jtbd_library jl JOIN listed ON listed.code = jl.jtbd_code
  WHERE :jtbd_sp_link IN ('library', 'require_agreement')
  UNION
  SELECT jl.id, jl.function
  FROM jtbd_library jl
  WHERE jl.function IN (SELECT code FROM seed_strategic_priorities)
    AND (:jtbd_sp_link = 'function'
         OR (:jtbd_sp_link = 'require_agreement'
             AND jl.jtbd_code IN (SELECT code FROM listed)))
),
chosen AS (
  SELECT id, min(sp) AS sp FROM candidate GROUP BY id HAVING count(*) = 1
)
UPDATE jtbd_library
SET strategic_priority_id = plan_uuid('strategic_priority', chosen.sp)
FROM chosen
WHERE jtbd_library.id = chosen.id
  AND chosen.sp IN (SELECT code FROM seed_strategic_priorities);
