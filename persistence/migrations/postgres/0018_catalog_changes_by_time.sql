-- Cluster nodes follow catalog records and sales written by the other nodes (issue 15):
-- every second each node reads what changed in the last few seconds, by these indexes.
CREATE INDEX products_by_update ON products (updated_at);
CREATE INDEX flash_sales_by_creation ON flash_sales (created_at);
