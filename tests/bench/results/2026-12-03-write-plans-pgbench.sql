BEGIN;
SET LOCAL synchronous_commit TO off;
SELECT o_first, o_rev, o_log, o_ch, o_id FROM comet_write(ARRAY['rate'], ARRAY['text/plain'], ARRAY['\x68656c6c6f'::bytea], ARRAY[NULL::text], (extract(epoch from now())*1000)::bigint, 1000, 86400000);
COMMIT;
