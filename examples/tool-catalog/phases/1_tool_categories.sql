-- Phase 1: one row per dh_tool category, with how many tools (and active
-- tools) it holds. "Strategic Intelligence/KOL" has the parent
-- "Strategic Intelligence"; the colour comes from the seed file
-- seeds/category_colors.json, loaded as the table seed_category_colors.
-- The id is plan_uuid('tool_category', name): the same on every run.

INSERT INTO tool_categories (id, name, parent, color, tools, active_tools, created_at)
SELECT plan_uuid('tool_category', t.category),
       t.category,
       trim(substr(t.category, 1, instr(t.category || '/', '/') - 1)) AS parent,
       (SELECT c.color FROM seed_category_colors c
         WHERE c.parent = trim(substr(t.category, 1, instr(t.category || '/', '/') - 1))),
       count(*),
       sum(t.is_active),
       :pulled_at
FROM dh_tool t
WHERE t.category IS NOT NULL
GROUP BY t.category;
