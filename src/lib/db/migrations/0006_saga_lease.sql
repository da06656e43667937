-- Saga leases (docs/sagas.md "Several instances"): the driver instance that
-- drives a saga holds its lease until lease_until_ms (its wall clock) and
-- renews it while it drives. A claim takes a free, own or expired lease and
-- bumps lease_version; every state write of a driver checks the
-- lease_version it claimed (fencing), so an owner that lost its lease
-- cannot write. '' = nobody holds it.
ALTER TABLE saga_instances ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE saga_instances ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE saga_instances ADD COLUMN lease_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX saga_instances_lease ON saga_instances (lease_owner, type);
