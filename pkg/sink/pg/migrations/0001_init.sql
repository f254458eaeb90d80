-- sysmon schema, version 1.
--
-- Portability: every sample table is a plain range-partitioned table on ts
-- with no unique constraint or primary key, so that the same columns work as
-- TimescaleDB hypertables (created on plain tables instead, see doc.go) and
-- as Citus tables distributed by node. Dedupe lives in the stream table, per
-- batch, not per row: a per-row unique index would halve ingest speed and
-- would have to include ts on a partitioned table anyway.

CREATE TABLE node (
    node       text        NOT NULL PRIMARY KEY,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- One row per producer spool: the highest batch sequence committed from it.
-- It is updated in the same transaction as the batch's rows, which is what
-- makes ingest exactly-once when a spool is replayed.
CREATE TABLE stream (
    node          text        NOT NULL,
    spool_id      text        NOT NULL,
    boot_id       text        NOT NULL DEFAULT '',
    agent_version text        NOT NULL DEFAULT '',
    last_seq      bigint      NOT NULL DEFAULT 0,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, spool_id)
);

CREATE TABLE prc (
    node          text             NOT NULL,
    ts            timestamptz      NOT NULL,
    pid           integer          NOT NULL,
    comm          text             NOT NULL,
    cmdline       text             NOT NULL,
    state         text             NOT NULL,
    ppid          integer          NOT NULL,
    username      text             NOT NULL,
    app           text             NOT NULL,
    cpu_pct       double precision NOT NULL,
    cpu_time_ms   bigint           NOT NULL,
    rss           bigint           NOT NULL,
    d_rss         bigint           NOT NULL,
    vsz           bigint           NOT NULL,
    threads       bigint           NOT NULL,
    fds           integer          NOT NULL,
    read_bps      double precision NOT NULL,
    write_bps     double precision NOT NULL,
    runq_wait_pct double precision NOT NULL,
    wchan         text             NOT NULL,
    start_time    bigint           NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX prc_node_ts ON prc (node, ts);

CREATE TABLE memory (
    node       text        NOT NULL,
    ts         timestamptz NOT NULL,
    total      bigint      NOT NULL,
    free       bigint      NOT NULL,
    available  bigint      NOT NULL,
    buffers    bigint      NOT NULL,
    cached     bigint      NOT NULL,
    swap_total bigint      NOT NULL,
    swap_free  bigint      NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX memory_node_ts ON memory (node, ts);

-- Pressure columns are NULL where the kernel has no PSI.
CREATE TABLE host (
    node                 text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    load1                double precision NOT NULL,
    load5                double precision NOT NULL,
    load15               double precision NOT NULL,
    cpu_user             double precision NOT NULL,
    cpu_system           double precision NOT NULL,
    cpu_iowait           double precision NOT NULL,
    cpu_idle             double precision NOT NULL,
    cpu_steal            double precision NOT NULL,
    procs_running        bigint           NOT NULL,
    procs_blocked        bigint           NOT NULL,
    procs_total          bigint           NOT NULL,
    pressure_cpu_some    double precision,
    pressure_memory_some double precision,
    pressure_memory_full double precision,
    pressure_io_some     double precision,
    pressure_io_full     double precision,
    procs_seen           bigint
) PARTITION BY RANGE (ts);
CREATE INDEX host_node_ts ON host (node, ts);

-- grouping is wire.AppTop.Group: "cgroup" or "user".
CREATE TABLE app_top (
    node        text             NOT NULL,
    ts          timestamptz      NOT NULL,
    application text             NOT NULL,
    unit        text             NOT NULL,
    value       double precision NOT NULL,
    grouping    text             NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX app_top_node_ts ON app_top (node, ts);

CREATE TABLE fun_top (
    node          text        NOT NULL,
    ts            timestamptz NOT NULL,
    fun           text        NOT NULL,
    fun_type      text        NOT NULL,
    num_processes bigint      NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX fun_top_node_ts ON fun_top (node, ts);

CREATE TABLE node_role (
    node text        NOT NULL,
    ts   timestamptz NOT NULL,
    data text        NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX node_role_node_ts ON node_role (node, ts);

CREATE TABLE events (
    node    text        NOT NULL,
    ts      timestamptz NOT NULL,
    kind    text        NOT NULL,
    subject text        NOT NULL,
    detail  text        NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX events_node_ts ON events (node, ts);
