-- The write API answers a redelivery request of a delivery that is not dead with 409 and its state
-- alone: it keeps a delivery's view (the 202's body) only while the delivery is dead (#15: the view of
-- every delivery, serialised and stored, was most of what the write API spent on the deliveries topic).
ALTER TABLE deliveries ALTER COLUMN view DROP NOT NULL;
UPDATE deliveries SET view = NULL WHERE state <> 'dead';
