-- The table cel_pgsql writes to (cel_pgsql.conf: table = cel). cel_pgsql reads the column names
-- at load time and fills each one it knows; eventtime is written as text in UTC (usegmtime = yes).
-- Create it in the database named in cel_pgsql.conf, as a user Asterisk logs in with; clinicall
-- only needs SELECT on it (GRANT SELECT ON cel TO clinicall_reader).
CREATE TABLE IF NOT EXISTS cel (
    id          bigserial PRIMARY KEY,
    eventtype   varchar(30)  NOT NULL,
    eventtime   timestamp    NOT NULL,
    userdeftype varchar(255) NOT NULL,
    cid_name    varchar(80)  NOT NULL,
    cid_num     varchar(80)  NOT NULL,
    cid_ani     varchar(80)  NOT NULL,
    cid_rdnis   varchar(80)  NOT NULL,
    cid_dnid    varchar(80)  NOT NULL,
    exten       varchar(80)  NOT NULL,
    context     varchar(80)  NOT NULL,
    channame    varchar(80)  NOT NULL,
    appname     varchar(80)  NOT NULL,
    appdata     varchar(512) NOT NULL,
    amaflags    integer      NOT NULL,
    accountcode varchar(80)  NOT NULL,
    peeraccount varchar(80)  NOT NULL,
    uniqueid    varchar(150) NOT NULL,
    linkedid    varchar(150) NOT NULL,
    userfield   varchar(255) NOT NULL,
    peer        varchar(80)  NOT NULL,
    extra       varchar(512) NOT NULL
);
CREATE INDEX IF NOT EXISTS cel_eventtime ON cel (eventtime);
CREATE INDEX IF NOT EXISTS cel_linkedid ON cel (linkedid);
