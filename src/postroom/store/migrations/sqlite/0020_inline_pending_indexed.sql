-- The index of messages whose inline parts are not counted (0015) held every new message
-- too, from its INSERT until the indexer counted its parts: one more b-tree entry written and
-- removed per delivery, for a query (the background pass over mail stored before 0015) that
-- reads indexed mail only (sqlite_background.py: "... AND m.indexed != 0"). It now holds only
-- those: the writer's INSERT of new mail (indexed = 0) adds nothing to it, and the indexer's
-- UPDATE counts the parts in the statement that makes indexed non-zero. The pass's query
-- spells both terms, so the planner still reads this index (tests/unit/test_inline_pending_index.py).
DROP INDEX message_inline_pending;
CREATE INDEX message_inline_pending ON message(id) WHERE inline_parts IS NULL AND indexed != 0;
