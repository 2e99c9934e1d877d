-- The table cdr_pgsql writes to (cdr_pgsql.conf: table = cdr), as Asterisk's documentation gives it,
-- plus patient_id (filled from CDR(PATIENT_ID), which the dialplan sets). Times are UTC (usegmtime = yes).
CREATE TABLE IF NOT EXISTS cdr (
    calldate    timestamp    NOT NULL,
    clid        varchar(80)  NOT NULL,
    src         varchar(80)  NOT NULL,
    dst         varchar(80)  NOT NULL,
    dcontext    varchar(80)  NOT NULL,
    channel     varchar(80)  NOT NULL,
    dstchannel  varchar(80)  NOT NULL,
    lastapp     varchar(80)  NOT NULL,
    lastdata    varchar(80)  NOT NULL,
    start       timestamp,
    answer      timestamp,
    "end"       timestamp,
    duration    bigint       NOT NULL,
    billsec     bigint       NOT NULL,
    disposition varchar(45)  NOT NULL,
    amaflags    bigint       NOT NULL,
    accountcode varchar(20)  NOT NULL,
    uniqueid    varchar(150) NOT NULL,
    linkedid    varchar(150) NOT NULL,
    userfield   varchar(255) NOT NULL,
    peeraccount varchar(20)  NOT NULL,
    sequence    integer      NOT NULL,
    patient_id  varchar(20)  NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS cdr_linkedid ON cdr (linkedid);
