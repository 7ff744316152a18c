-- Queries that leak across tenants on purpose, in the catalogue's format, for
-- tests/test_check_queries.py: each is a mistake people make against a shared
-- store, and check-queries must report every one. The last entries are input
-- that must be refused without being run.

-- name: safeSessionQuery
-- params: business_id, our_jid, their_id
SELECT session FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- name: sessionWithoutTenant
-- params: our_jid, their_id
SELECT session FROM whatsmeow_sessions
WHERE our_jid = $1 AND their_id = $2;

-- name: contactsJoinedOnJidAlone
-- params: business_id, our_jid
SELECT
    c.their_jid,
    c.first_name,
    m.lid
FROM whatsmeow_contacts AS c
INNER JOIN whatsmeow_lid_map AS m ON c.their_jid = m.pn || '@s.whatsapp.net'
WHERE c.business_id = $1 AND c.our_jid = $2;

-- name: identityCountBySubSelect
-- params: business_id, our_jid
SELECT
    s.their_id,
    (
        SELECT count(*) FROM whatsmeow_identity_keys AS i
        WHERE i.our_jid = s.our_jid AND i.their_id = s.their_id
    ) AS identities
FROM whatsmeow_sessions AS s
WHERE s.business_id = $1 AND s.our_jid = $2;

-- name: contactsWithAnEscapingOr
-- params: business_id, our_jid, their_jid
SELECT
    their_jid,
    push_name
FROM whatsmeow_contacts
WHERE business_id = $1 AND our_jid = $2 OR their_jid = $3;

-- name: deleteSessionOfEveryTenant
-- params: our_jid, their_id
DELETE FROM whatsmeow_sessions
WHERE our_jid = $1 AND their_id = $2;

-- name: renameContactEverywhere
-- params: business_id, our_jid, their_jid, push_name
UPDATE whatsmeow_contacts SET push_name = $4
WHERE (business_id = $1 OR our_jid = $2) AND their_jid = $3;

-- name: pushNameFromAnyTenant
-- params: business_id, our_jid
UPDATE whatsmeow_contacts AS c SET push_name = o.push_name
FROM whatsmeow_contacts AS o
WHERE
    c.business_id = $1
    AND c.our_jid = $2
    AND o.our_jid = c.our_jid
    AND o.their_jid = c.their_jid
    AND o.push_name <> c.push_name;

-- name: lidMappingForAFixedTenant
-- params: other_lid, pn
INSERT INTO whatsmeow_lid_map (business_id, lid, pn)
VALUES ('tenant_b', $1, $2 || '9');

-- name: sessionsByLowercaseTenant
-- params: business_id, our_jid
SELECT their_id FROM whatsmeow_sessions
WHERE lower(business_id) = lower($1) AND our_jid = $2;

-- name: dropSessions
-- params:
DROP TABLE whatsmeow_sessions;

-- name: beginTransaction
-- params:
BEGIN;

-- name: twoStatements
-- params: business_id
SELECT jid FROM whatsmeow_device
WHERE business_id = $1;
DELETE FROM whatsmeow_device;

-- name: unknownParameter
-- params: business_id, device_jid
SELECT session FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2;
