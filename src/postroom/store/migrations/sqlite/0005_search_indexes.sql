-- from:/subject: searches are substring matches (LIKE '%...%'): no index can seek them, but
-- a covering index is scanned instead of the whole message table (3-4 MB instead of ~60 MB
-- at 100,000 messages; from: 25 ms -> 10 ms measured in benchmarks/search_bench.py).
CREATE INDEX message_from_cover ON message(from_addr, from_name, read);
CREATE INDEX message_subject_cover ON message(subject, read);
