-- The local trace store (docs/observability.md, "Local trace view"). `spans` holds every span
-- received (once: a span sent twice is kept once); `traces` one summary row per trace, kept up
-- to date as its spans arrive, so lists and eviction never scan the spans; `trace_stats` the
-- counters (one row). Traces leave whole: by arrival order past `traces.max_spans`, and when
-- no span was added for `traces.max_age_s`.
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    status INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    links TEXT NOT NULL,
    order_id TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_by_order ON spans (order_id) WHERE order_id IS NOT NULL;
CREATE TABLE traces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL UNIQUE,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    span_count BIGINT NOT NULL,
    error INTEGER NOT NULL,
    has_root INTEGER NOT NULL,
    root_service TEXT NOT NULL,
    root_name TEXT NOT NULL,
    last_added_ns BIGINT NOT NULL
);
CREATE INDEX traces_by_start ON traces (start_ns);
CREATE INDEX traces_by_duration ON traces ((end_ns - start_ns));
CREATE INDEX traces_by_last_added ON traces (last_added_ns);
CREATE TABLE trace_stats (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    spans BIGINT NOT NULL,
    evicted_traces BIGINT NOT NULL,
    evicted_spans BIGINT NOT NULL
);
INSERT INTO trace_stats (id, spans, evicted_traces, evicted_spans) VALUES (1, 0, 0, 0);
