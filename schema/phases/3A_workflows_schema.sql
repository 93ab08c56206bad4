-- Phase 3A: the seed plan's "enhance schema" step. Everything a migrated
-- workflow carries goes into `definition`, so no column is added: this
-- phase writes nothing. Its conflict check (plan.json) proves, from the
-- pulled catalog (_sandbox_columns), that `workflows` has the columns
-- phases 3B and 3C write.

