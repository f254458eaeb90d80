-- sysmon schema, version 2: the certificate that owns each node.
--
-- A producer whose certificate names no node (no sysmon-node: URI SAN) owns
-- the nodes it reported first; these columns record that owner. The owner
-- is the certificate's subject DN together with its issuer DN (both as Go's
-- pkix.Name.String renders them, RFC 2253 order), not its serial or key: a
-- certificate renewed with the same subject by the same CA keeps its nodes.
-- owner_serial is the serial of the certificate that last claimed the node,
-- for the operator; it does not take part in the check.
--
-- NULL owner: nobody claimed the node yet. That is the state of every node
-- row from before this migration and of rows created for plain ws://
-- producers or for certificates bound to nodes by SAN, which never claim.
--
-- Nullable columns without defaults, no constraints: IF NOT EXISTS keeps the
-- migration idempotent (a schema prepared by hand for TimescaleDB may have
-- them already), and ADD COLUMN of this kind is what Citus propagates to
-- the shards of a table distributed by node.

ALTER TABLE node ADD COLUMN IF NOT EXISTS owner_subject text;
ALTER TABLE node ADD COLUMN IF NOT EXISTS owner_issuer  text;
ALTER TABLE node ADD COLUMN IF NOT EXISTS owner_serial  text;
ALTER TABLE node ADD COLUMN IF NOT EXISTS claimed_at    timestamptz;
