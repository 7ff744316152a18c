package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
)

// readBack reads a store through upstream's own store API only: every device, and for each one
// every value fill wrote, asked for by the keys fill used. It returns the device JIDs, how many
// values were found, and a digest of all of them, so that two stores holding the same data give
// the same answer whatever database they live in.
func readBack(ctx context.Context, container *sqlstore.Container) (jids []string, found int, digest string, err error) {
	devices, err := container.GetAllDevices(ctx)
	if err != nil {
		return nil, 0, "", err
	}
	sort.Slice(devices, func(i, j int) bool { return devices[i].ID.String() < devices[j].ID.String() })
	var values []any
	keep := func(what string, value any, e error) {
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", what, e)
		}
		values = append(values, what, value)
		if b, _ := json.Marshal(value); len(b) > 0 && string(b) != "null" && string(b) != `""` {
			found++
		}
	}
	for _, dev := range devices {
		jid := *dev.ID
		tag := jid.String()
		jids = append(jids, tag)
		keep("device", []any{dev.ID, dev.LID, dev.RegistrationID, dev.NoiseKey, dev.IdentityKey, dev.SignedPreKey,
			dev.AdvSecretKey, dev.Account, dev.Platform, dev.BusinessName, dev.PushName, dev.LIDMigrationTimestamp,
			dev.CompanionMetaNonce, dev.FacebookUUID}, nil)
		s := sqlstore.NewSQLStore(container, jid)
		var addresses []string
		var pns []types.JID
		for p := range 40 {
			pn := types.JID{User: fmt.Sprintf("4915%08d", p), Server: types.DefaultUserServer}
			lid := types.JID{User: fmt.Sprintf("2000000000%05d", p), Server: types.HiddenUserServer}
			pns = append(pns, pn)
			for _, peer := range []types.JID{pn, lid} {
				peerDevice := peer
				peerDevice.Device = uint16(p % 3)
				addresses = append(addresses, peerDevice.SignalAddress().String())
			}
			group := types.JID{User: fmt.Sprintf("1203630000%08d", p), Server: types.GroupServer}
			key, e := s.GetSenderKey(ctx, group.String(), pn.SignalAddress().String())
			keep("sender key", key, e)
			for _, chat := range []types.JID{group, pn, lid} {
				settings, e := s.GetChatSettings(ctx, chat)
				keep("chat settings", settings, e)
			}
			secret, sender, e := s.GetMessageSecret(ctx, types.JID{User: "120363000000000001", Server: types.GroupServer},
				lid, fmt.Sprintf("3EB0%08X", p))
			keep("message secret", []any{secret, sender}, e)
			token, e := s.GetPrivacyToken(ctx, lid)
			keep("privacy token", token, e)
			format, plaintext, e := s.GetOutgoingEvent(ctx, group, types.EmptyJID, fmt.Sprintf("3EB1%08X", p))
			keep("outgoing event", []any{format, plaintext}, e)
			var hash [32]byte
			copy(hash[:], bytesOf(tag+"ciphertext"+fmt.Sprint(p), 32))
			event, e := s.GetBufferedEvent(ctx, hash)
			keep("buffered event", event, e)
		}
		sessions, e := s.GetManySessions(ctx, addresses)
		keep("sessions", sessions, e)
		contacts, e := s.GetAllContacts(ctx)
		keep("contacts", contacts, e)
		lids, e := container.LIDMap.GetManyLIDsForPNs(ctx, pns)
		keep("lid map", lids, e)
		syncKeys, e := s.GetAllAppStateSyncKeys(ctx)
		keep("app state sync keys", syncKeys, e)
		salt, e := s.GetNCTSalt(ctx)
		keep("nct salt", salt, e)
		for id := uint32(0); id < 60; id++ {
			key, e := s.GetPreKey(ctx, id)
			keep("pre key", key, e)
		}
		for _, name := range []string{"critical_block", "regular_high", "regular_low"} {
			version, hash, e := s.GetAppStateVersion(ctx, name)
			keep("app state version", []any{version, hash}, e)
			for m := range 450 {
				mac, e := s.GetAppStateMutationMAC(ctx, name, bytesOf(fmt.Sprintf("%s%s%d", tag, name, m), 32))
				keep("mutation mac", mac, e)
			}
		}
	}
	encoded, e := json.Marshal(values)
	if e != nil && err == nil {
		err = e
	}
	sum := sha256.Sum256(encoded)
	return jids, found, hex.EncodeToString(sum[:]), err
}
