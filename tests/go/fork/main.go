// fork-store drives the store API of the multi-tenant fork angleto/whatsmeow
// (sqlstore.NewContainer(pool, businessID, log), pgx) against a database the package built, for
// two tenants that share every JID, and prints one JSON line.
//
//	fork-store [-wrap] exercise DSN TENANT_A TENANT_B
//	fork-store bench TENANT ITERATIONS pool=DSN|wrap=DSN|floor=DSN...
//
// exercise writes a full store for each tenant through the store API, reads everything back for
// both, deletes some of B's rows and then B's device, and checks after every step that A's rows
// are unchanged and that neither tenant reads the other's. bench times a hot-path mix of store
// operations against each target in turn, interleaved. -wrap (and a wrap= target) names the
// tenant in every transaction (TenantDB), which row-level security needs; a floor= target sends
// a trivial statement in the tenant call's place, to show what one more statement costs; only
// the fork-store-tenantdb build has them. Exit status: 0 ok, 1 failed, 2 bad usage.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
)

// JIDs in the forms whatsmeow writes: a companion device is user:device@s.whatsapp.net.
var (
	device    = types.JID{User: "15550001111", Device: 7, Server: types.DefaultUserServer}
	deviceLID = types.JID{User: "98765432100", Device: 7, Server: types.HiddenUserServer}
	peerPN    = types.NewJID("15550002222", types.DefaultUserServer)
	peerLID   = types.NewJID("11122233344", types.HiddenUserServer)
	peer2PN   = types.NewJID("15550003333", types.DefaultUserServer)
	peer2LID  = types.NewJID("11122233355", types.HiddenUserServer)
	group     = types.NewJID("120363000000000000", types.GroupServer)
)

// Signal addresses as whatsmeow derives them from a JID (user[_agent]:device; a phone number has
// agent 0, so none is written).
var (
	address  = types.JID{User: "15550002222", Device: 1, Server: types.DefaultUserServer}.SignalAddress().String()
	address2 = types.JID{User: "15550002222", Device: 2, Server: types.DefaultUserServer}.SignalAddress().String()
	address3 = types.JID{User: "11122233344", Device: 1, Server: types.HiddenUserServer}.SignalAddress().String()
)

const (
	appState = "regular_high"
	msgID    = "3EB0C0FFEE"
)

type report struct {
	OK          bool                 `json:"ok"`
	Error       string               `json:"error,omitempty"`
	Wrapped     bool                 `json:"wrapped"`
	Operations  map[string]int       `json:"operations,omitempty"`
	Checks      int                  `json:"checks,omitempty"`
	ForkDefects map[string]string    `json:"fork_defects,omitempty"`
	Addresses   []string             `json:"signal_addresses,omitempty"`
	DeviceJID   string               `json:"device_jid,omitempty"`
	Targets     []map[string]float64 `json:"microseconds_per_op,omitempty"`
	Iterations  int                  `json:"iterations,omitempty"`
	Reads       []string             `json:"reads,omitempty"`
}

var out = report{Operations: map[string]int{}, ForkDefects: map[string]string{}}

func fail(format string, args ...any) {
	out.OK = false
	out.Error = fmt.Sprintf(format, args...)
	_ = json.NewEncoder(os.Stdout).Encode(out)
	os.Exit(1)
}

// value is a payload that differs per tenant, so a row read from the wrong tenant shows.
func value(tenant, label string, size int) []byte {
	var buf []byte
	for i := 0; len(buf) < size; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", tenant, label, i)))
		buf = append(buf, sum[:]...)
	}
	return buf[:size]
}

func key32(tenant, label string) (k [32]byte) {
	copy(k[:], value(tenant, label, 32))
	return
}

type tenant struct {
	name      string
	container *sqlstore.Container
	store     *sqlstore.SQLStore
	preKey    uint32
}

// step runs one store call and counts it; a failure ends the run naming the call and tenant.
func step(t *tenant, name string, err error) {
	out.Operations[name]++
	if err != nil {
		fail("%s for tenant %s: %v", name, t.name, err)
	}
}

// defect runs a call that fails in the fork as released, whatever the schema, and keeps its error
// for the report instead of stopping.
func defect(t *tenant, name string, err error) {
	out.Operations[name]++
	message := "no error"
	if err != nil {
		message = err.Error()
	}
	out.ForkDefects[name] = message
}

func check(t *tenant, what string, ok bool) {
	out.Checks++
	if !ok {
		fail("tenant %s: %s", t.name, what)
	}
}

// open gives the tenant a store on pool, through what kind names: pool, wrap or floor (storeDB).
func open(ctx context.Context, pool *pgxpool.Pool, name string, kind string) *tenant {
	c := sqlstore.NewContainer(storeDB(pool, name, kind), name, nil)
	return &tenant{name: name, container: c, store: sqlstore.NewSQLStore(c, device)}
}

func write(ctx context.Context, t *tenant) {
	n := t.name
	dev := t.container.NewDevice()
	dev.ID = &device
	dev.LID = deviceLID
	dev.RegistrationID = uint32(len(n)) + 1000
	dev.PushName = "Push " + n
	dev.Platform = "platform " + n
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details: value(n, "details", 40), AccountSignature: value(n, "asig", 64),
		AccountSignatureKey: value(n, "asigkey", 32), DeviceSignature: value(n, "dsig", 64),
	}
	step(t, "PutDevice", t.container.PutDevice(ctx, dev))
	s := t.store
	step(t, "PutIdentity", s.PutIdentity(ctx, address, key32(n, "identity")))
	step(t, "PutSession", s.PutSession(ctx, address, value(n, "session", 300)))
	step(t, "PutManySessions", s.PutManySessions(ctx, map[string][]byte{
		address2: value(n, "session2", 200), address3: value(n, "session3", 100)}))
	keys, err := s.GetOrGenPreKeys(ctx, 3)
	step(t, "GetOrGenPreKeys", err)
	check(t, "three pre-keys generated", len(keys) == 3)
	t.preKey = keys[0].KeyID
	step(t, "MarkPreKeysAsUploaded", s.MarkPreKeysAsUploaded(ctx, keys[0].KeyID))
	step(t, "PutSenderKey", s.PutSenderKey(ctx, group.String(), address, value(n, "sender", 100)))
	step(t, "PutAppStateSyncKey", s.PutAppStateSyncKey(ctx, []byte("sync-key-1"), store.AppStateSyncKey{
		Data: value(n, "syncdata", 64), Fingerprint: value(n, "fingerprint", 20), Timestamp: 1_700_000_000}))
	var hash [128]byte
	copy(hash[:], value(n, "hash", 128))
	step(t, "PutAppStateVersion", s.PutAppStateVersion(ctx, appState, 3, hash))
	step(t, "PutAppStateMutationMACs", s.PutAppStateMutationMACs(ctx, appState, 3, []store.AppStateMutationMAC{
		{IndexMAC: value("shared", "index", 32), ValueMAC: value(n, "valuemac", 32)}}))
	step(t, "PutContactName", s.PutContactName(ctx, peerPN, "First "+n, "Full "+n))
	_, _, err = s.PutPushName(ctx, peerPN, "Push name "+n)
	step(t, "PutPushName", err)
	_, _, err = s.PutBusinessName(ctx, peerPN, "Business "+n)
	step(t, "PutBusinessName", err)
	defect(t, "PutAllContactNames", s.PutAllContactNames(ctx, []store.ContactEntry{
		{JID: peer2PN, FirstName: "Second " + n, FullName: "Second full " + n}}))
	defect(t, "PutManyRedactedPhones", s.PutManyRedactedPhones(ctx, []store.RedactedPhoneEntry{
		{JID: peer2PN, RedactedPhone: "+1 555***33 " + n}}))
	step(t, "PutContactName", s.PutContactName(ctx, peer2PN, "Second "+n, "Second full "+n))
	step(t, "PutMutedUntil", s.PutMutedUntil(ctx, group, time.Unix(1_800_000_000+int64(len(n)), 0)))
	step(t, "PutPinned", s.PutPinned(ctx, group, true))
	step(t, "PutArchived", s.PutArchived(ctx, group, len(n)%2 == 0))
	step(t, "PutMessageSecret", s.PutMessageSecret(ctx, group, peerPN, msgID, value(n, "secret", 32)))
	step(t, "PutPrivacyTokens", s.PutPrivacyTokens(ctx, store.PrivacyToken{
		User: peerPN, Token: value(n, "token", 24), Timestamp: time.Unix(1_700_000_000, 0)}))
	step(t, "PutLIDMapping", t.container.LIDMap.PutLIDMapping(ctx, peerLID, peerPN))
	step(t, "PutManyLIDMappings", t.container.LIDMap.PutManyLIDMappings(ctx, []store.LIDMapping{
		{LID: peer2LID, PN: peer2PN}}))
	step(t, "PutBufferedEvent", s.PutBufferedEvent(ctx, key32("shared", "ciphertext"),
		value(n, "plaintext", 200), time.Unix(1_700_000_000, 0)))
	step(t, "DoDecryptionTxn", s.DoDecryptionTxn(ctx, func(ctx context.Context) error {
		return s.PutBufferedEvent(ctx, key32("shared", "ciphertext2"), value(n, "plaintext2", 50), time.Unix(1_700_000_001, 0))
	}))
}

// verify reads everything back through a new container (the LID map caches) and compares it with
// what this tenant wrote. deleted says which of the tenant's rows verify must find gone.
func verify(ctx context.Context, t *tenant, deleted bool) {
	n, s, c := t.name, t.store, t.container
	got, err := c.GetDevice(ctx, device)
	step(t, "GetDevice", err)
	check(t, "its device, with its registration id and push name",
		got != nil && got.RegistrationID == uint32(len(n))+1000 && got.PushName == "Push "+n &&
			bytes.Equal(got.Account.Details, value(n, "details", 40)) && got.LID == deviceLID)
	all, err := c.GetAllDevices(ctx)
	step(t, "GetAllDevices", err)
	check(t, "exactly its one device", len(all) == 1 && *all[0].ID == device)
	trusted, err := s.IsTrustedIdentity(ctx, address, key32(n, "identity"))
	step(t, "IsTrustedIdentity", err)
	check(t, "its identity key trusted (or gone after the delete)", trusted)
	for _, other := range []string{"acme", "globex", "other"} {
		if other != n {
			trusted, err = s.IsTrustedIdentity(ctx, address, key32(other, "identity"))
			step(t, "IsTrustedIdentity", err)
			check(t, "another tenant's identity key distrusted", trusted == deleted)
		}
	}
	session, err := s.GetSession(ctx, address)
	step(t, "GetSession", err)
	has, err := s.HasSession(ctx, address)
	step(t, "HasSession", err)
	if deleted {
		check(t, "its deleted session gone", session == nil && !has)
	} else {
		check(t, "its session", bytes.Equal(session, value(n, "session", 300)) && has)
	}
	many, err := s.GetManySessions(ctx, []string{address2, address3})
	step(t, "GetManySessions", err)
	check(t, "its two other sessions", bytes.Equal(many[address2], value(n, "session2", 200)) &&
		bytes.Equal(many[address3], value(n, "session3", 100)))
	preKey, err := s.GetPreKey(ctx, t.preKey)
	step(t, "GetPreKey", err)
	check(t, "its first pre-key (or none after removing it)", (preKey == nil) == deleted)
	uploaded, err := s.UploadedPreKeyCount(ctx)
	step(t, "UploadedPreKeyCount", err)
	check(t, "one uploaded pre-key", uploaded == 1 || (deleted && uploaded == 0))
	senderKey, err := s.GetSenderKey(ctx, group.String(), address)
	step(t, "GetSenderKey", err)
	check(t, "its sender key", bytes.Equal(senderKey, value(n, "sender", 100)))
	syncKey, err := s.GetAppStateSyncKey(ctx, []byte("sync-key-1"))
	step(t, "GetAppStateSyncKey", err)
	check(t, "its app state sync key", syncKey != nil && bytes.Equal(syncKey.Data, value(n, "syncdata", 64)))
	latest, err := s.GetLatestAppStateSyncKeyID(ctx)
	step(t, "GetLatestAppStateSyncKeyID", err)
	check(t, "its latest sync key id", string(latest) == "sync-key-1")
	version, hash, err := s.GetAppStateVersion(ctx, appState)
	step(t, "GetAppStateVersion", err)
	if deleted {
		check(t, "its deleted app state version gone", version == 0)
	} else {
		check(t, "its app state version", version == 3 && bytes.Equal(hash[:], value(n, "hash", 128)))
	}
	mac, err := s.GetAppStateMutationMAC(ctx, appState, value("shared", "index", 32))
	step(t, "GetAppStateMutationMAC", err)
	check(t, "its mutation MAC (gone with its version)", bytes.Equal(mac, value(n, "valuemac", 32)) != deleted)
	contact, err := s.GetContact(ctx, peerPN)
	step(t, "GetContact", err)
	check(t, "its contact", contact.Found && contact.PushName == "Push name "+n &&
		contact.FullName == "Full "+n && contact.BusinessName == "Business "+n)
	contacts, err := s.GetAllContacts(ctx)
	step(t, "GetAllContacts", err)
	check(t, "its two contacts", len(contacts) == 2 && contacts[peer2PN].FirstName == "Second "+n)
	settings, err := s.GetChatSettings(ctx, group)
	step(t, "GetChatSettings", err)
	check(t, "its chat settings", settings.Found && settings.Pinned &&
		settings.MutedUntil.Unix() == 1_800_000_000+int64(len(n)) && settings.Archived == (len(n)%2 == 0))
	secret, _, err := s.GetMessageSecret(ctx, group, peerPN, msgID)
	step(t, "GetMessageSecret", err)
	check(t, "its message secret", bytes.Equal(secret, value(n, "secret", 32)))
	token, err := s.GetPrivacyToken(ctx, peerPN)
	step(t, "GetPrivacyToken", err)
	check(t, "its privacy token", token != nil && bytes.Equal(token.Token, value(n, "token", 24)))
	lid, err := c.LIDMap.GetLIDForPN(ctx, peerPN)
	step(t, "GetLIDForPN", err)
	pn, err := c.LIDMap.GetPNForLID(ctx, peer2LID)
	step(t, "GetPNForLID", err)
	lids, err := c.LIDMap.GetManyLIDsForPNs(ctx, []types.JID{peerPN, peer2PN})
	step(t, "GetManyLIDsForPNs", err)
	check(t, "its LID map", lid == peerLID && pn == peer2PN && len(lids) == 2 && lids[peer2PN] == peer2LID)
	event, err := s.GetBufferedEvent(ctx, key32("shared", "ciphertext"))
	step(t, "GetBufferedEvent", err)
	if deleted {
		check(t, "its buffered event's plaintext cleared", event != nil && event.Plaintext == nil)
	} else {
		check(t, "its buffered event", event != nil && bytes.Equal(event.Plaintext, value(n, "plaintext", 200)))
	}
}

func deleteSome(ctx context.Context, t *tenant) {
	s := t.store
	step(t, "DeleteSession", s.DeleteSession(ctx, address))
	step(t, "DeleteIdentity", s.DeleteIdentity(ctx, address))
	step(t, "RemovePreKey", s.RemovePreKey(ctx, t.preKey))
	step(t, "DeleteAppStateVersion", s.DeleteAppStateVersion(ctx, appState))
	step(t, "DeleteAppStateMutationMACs", s.DeleteAppStateMutationMACs(ctx, appState, [][]byte{value("shared", "index", 32)}))
	step(t, "ClearBufferedEventPlaintext", s.ClearBufferedEventPlaintext(ctx, key32("shared", "ciphertext")))
}

func exercise(ctx context.Context, pool *pgxpool.Pool, names []string, wrap bool) {
	kind := "pool"
	if wrap {
		kind = "wrap"
	}
	tenants := make([]*tenant, len(names))
	for i, name := range names {
		tenants[i] = open(ctx, pool, name, kind)
		write(ctx, tenants[i])
	}
	reopen := func(i int) *tenant {
		t := open(ctx, pool, names[i], kind)
		t.preKey = tenants[i].preKey
		return t
	}
	for i := range names {
		verify(ctx, reopen(i), false)
	}
	a, b := reopen(0), reopen(1)
	deleteSome(ctx, b)
	verify(ctx, b, true)
	verify(ctx, reopen(0), false)
	dev, err := b.container.GetDevice(ctx, device)
	step(b, "GetDevice", err)
	step(b, "DeleteDevice", b.container.DeleteDevice(ctx, dev))
	gone, err := b.container.GetDevice(ctx, device)
	step(b, "GetDevice", err)
	check(b, "its device gone after DeleteDevice", gone == nil)
	verify(ctx, a, false)
	out.DeviceJID = device.String()
	out.Addresses = []string{address, address2, address3}
}

// receiveCalls are the store calls of the receive path: identity, session, sender key and message
// secret; four reads, three writes.
func receiveCalls(ctx context.Context, t *tenant) []storeCall {
	s, name := t.store, t.name
	return []storeCall{
		{"IsTrustedIdentity", true, func() error { _, err := s.IsTrustedIdentity(ctx, address, key32(name, "identity")); return err }},
		{"GetSession", true, func() error { _, err := s.GetSession(ctx, address); return err }},
		{"PutSession", false, func() error { return s.PutSession(ctx, address, value(name, "session", 300)) }},
		{"GetSenderKey", true, func() error { _, err := s.GetSenderKey(ctx, group.String(), address); return err }},
		{"GetMessageSecret", true, func() error { _, _, err := s.GetMessageSecret(ctx, group, peerPN, msgID); return err }},
		{"PutMessageSecret", false, func() error { return s.PutMessageSecret(ctx, group, peerPN, msgID, value(name, "secret", 32)) }},
		{"PutManySessions", false, func() error {
			return s.PutManySessions(ctx, map[string][]byte{address2: value(name, "session2", 200)})
		}},
	}
}

type storeCall struct {
	name string
	read bool
	fn   func() error
}

// benchChunks is how many slices each call's iterations are cut into; the targets take turns
// slice by slice, so that every target meets the same machine. On a shared machine, separate
// runs differ by more than the costs compared.
const benchChunks = 20

// bench runs the receive path's store calls against each target (pool=DSN, wrap=DSN for the
// tenant wrapper, floor=DSN for the wrapper with oneMoreStatement in the call's place), each with
// its own tenant (TENANT0, TENANT1, …) whose device and history it writes first, interleaved, and
// reports the mean time per call of each target, in the order given.
func bench(ctx context.Context, tenantName string, iterations int, targets []string) {
	type target struct {
		t     *tenant
		calls []storeCall
		spent []time.Duration
	}
	var ts []*target
	for i, spec := range targets {
		kind, dsn, ok := strings.Cut(spec, "=")
		if !ok || (kind != "pool" && kind != "wrap" && kind != "floor") {
			fail("bad target %q: want pool=DSN, wrap=DSN or floor=DSN", spec)
		}
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			fail("connecting to target %d: %v", i, err)
		}
		defer pool.Close()
		t := open(ctx, pool, fmt.Sprintf("%s%d", tenantName, i), kind)
		write(ctx, t)
		calls := receiveCalls(ctx, t)
		for _, call := range calls {
			for range 20 { // warm the pool and the prepared statements
				step(t, call.name, call.fn())
			}
		}
		ts = append(ts, &target{t: t, calls: calls, spent: make([]time.Duration, len(calls))})
	}
	perChunk := max(iterations/benchChunks, 1)
	for c := range ts[0].calls {
		for chunk := range benchChunks {
			for k := range ts {
				tg := ts[(chunk+k)%len(ts)] // a different target goes first in each slice
				call := tg.calls[c]
				begin := time.Now()
				for range perChunk {
					step(tg.t, call.name, call.fn())
				}
				tg.spent[c] += time.Since(begin)
			}
		}
	}
	n := perChunk * benchChunks
	for _, call := range ts[0].calls {
		if call.read {
			out.Reads = append(out.Reads, call.name)
		}
	}
	for _, tg := range ts {
		result := map[string]float64{}
		var total, reads time.Duration
		var readCalls int
		for c, call := range tg.calls {
			result[call.name] = float64(tg.spent[c].Microseconds()) / float64(n)
			total += tg.spent[c]
			if call.read {
				reads += tg.spent[c]
				readCalls++
			}
		}
		calls := len(tg.calls)
		result["mean"] = float64(total.Microseconds()) / float64(n*calls)
		result["mean_read"] = float64(reads.Microseconds()) / float64(n*readCalls)
		result["mean_write"] = float64((total - reads).Microseconds()) / float64(n*(calls-readCalls))
		out.Targets = append(out.Targets, result)
	}
	out.Iterations = n
}

const usage = "usage: fork-store [-wrap] exercise DSN A B | bench TENANT N pool=DSN|wrap=DSN|floor=DSN..."

func main() {
	wrap := flag.Bool("wrap", false, "name the tenant in every transaction (needs the tenantdb build)")
	flag.Parse()
	args := flag.Args()
	out.Wrapped = *wrap
	ctx := context.Background()
	switch {
	case len(args) == 4 && args[0] == "exercise":
		pool, err := pgxpool.New(ctx, args[1])
		if err != nil {
			fail("connecting: %v", err)
		}
		defer pool.Close()
		exercise(ctx, pool, args[2:], *wrap)
	case len(args) >= 4 && args[0] == "bench" && !*wrap:
		iterations, err := strconv.Atoi(args[2])
		if err != nil || iterations < 1 {
			fail("bad iteration count %q", args[2])
		}
		bench(ctx, args[1], iterations, args[3:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	out.OK = true
	_ = json.NewEncoder(os.Stdout).Encode(out)
}
