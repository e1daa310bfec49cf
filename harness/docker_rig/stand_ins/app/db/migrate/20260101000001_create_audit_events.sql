CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    action character varying NOT NULL,
    created_at timestamp(6) without time zone NOT NULL DEFAULT now()
);
