-- Phase 2: inactive tools are marked deprecated, and their metadata records
-- when (the snapshot's pull time). Policy :inactive_tools = 'keep' leaves
-- them as they are. jsonb values are rewritten to the text Postgres prints
-- after the phase, so json_set's output needs no care.

UPDATE dh_tool
SET lifecycle_stage = 'deprecated',
    metadata = json_set(metadata, '$.deprecated_at', :pulled_at)
WHERE is_active = 0
  AND :inactive_tools = 'deprecate';
