-- Callback keys and storage secrets sealed by an earlier livehooks are
-- sealed again, bound to their rows (AES-GCM additional data: the project and
-- the config id or publish domain), by Go code that runs in this migration's
-- transaction (bindSealed in migrate.go). The schema does not change.
SELECT 1;
