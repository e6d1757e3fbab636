-- Per-mailbox listings and counts at 100,000+ messages: walk a folder's deliveries newest
-- first, and count them (and the unseen ones) from the index alone.
CREATE INDEX delivery_folder_message ON delivery(folder_id, message, seen);
