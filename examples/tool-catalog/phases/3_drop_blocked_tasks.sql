-- Phase 3: blocked tasks are removed. The diff pushes these as deletes;
-- the receipt keeps every deleted row whole, and rollback inserts them
-- again.

DELETE FROM dh_task WHERE state = 'blocked';
