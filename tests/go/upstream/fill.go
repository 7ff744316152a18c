package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
)

// bytesOf is a payload that differs per label, so every row is distinct.
func bytesOf(label string, size int) []byte {
	var buf []byte
	for i := 0; len(buf) < size; i++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", label, i))
		buf = append(buf, sum[:]...)
	}
	return buf[:size]
}

// fill writes a store through upstream's own store API, as a running whatsmeow would: two
// devices (one with a LID), and rows in every table, in the batches the API uses. It returns the
// number of store calls.
func fill(ctx context.Context, container *sqlstore.Container) (calls int, err error) {
	do := func(what string, e error) {
		calls++
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", what, e)
		}
	}
	devices := []types.JID{
		{User: "15550001111", Device: 7, Server: types.DefaultUserServer},
		{User: "15550004444", Device: 2, Server: types.DefaultUserServer},
	}
	for d, jid := range devices {
		tag := jid.String()
		dev := container.NewDevice()
		dev.ID = &jid
		if d == 0 {
			dev.LID = types.JID{User: "98765432100", Device: 7, Server: types.HiddenUserServer}
		}
		dev.PushName = "Café \"Quote\" 'Inc' 😀"
		dev.Platform = "android"
		dev.Account = &waAdv.ADVSignedDeviceIdentity{
			Details: bytesOf(tag+"details", 300), AccountSignature: bytesOf(tag+"asig", 64),
			AccountSignatureKey: bytesOf(tag+"asigkey", 32), DeviceSignature: bytesOf(tag+"dsig", 64),
		}
		do("PutDevice", container.PutDevice(ctx, dev))
		s := sqlstore.NewSQLStore(container, jid)
		sessions := map[string][]byte{}
		var lidMappings []store.LIDMapping
		var contacts []store.ContactEntry
		var phones []store.RedactedPhoneEntry
		var secrets []store.MessageSecretInsert
		var tokens []store.PrivacyToken
		for p := range 40 {
			pn := types.JID{User: fmt.Sprintf("4915%08d", p), Server: types.DefaultUserServer}
			lid := types.JID{User: fmt.Sprintf("2000000000%05d", p), Server: types.HiddenUserServer}
			for _, peer := range []types.JID{pn, lid} {
				peerDevice := peer
				peerDevice.Device = uint16(p % 3)
				address := peerDevice.SignalAddress().String()
				var key [32]byte
				copy(key[:], bytesOf(tag+address, 32))
				do("PutIdentity", s.PutIdentity(ctx, address, key))
				sessions[address] = bytesOf(tag+"session"+address, 100+p*20)
			}
			lidMappings = append(lidMappings, store.LIDMapping{LID: lid, PN: pn})
			contacts = append(contacts, store.ContactEntry{JID: pn, FirstName: fmt.Sprintf("Ünïcode %d", p),
				FullName: fmt.Sprintf("Full 'Name' %% _ \\ %d", p)})
			phones = append(phones, store.RedactedPhoneEntry{JID: lid, RedactedPhone: fmt.Sprintf("+49 15***%02d", p)})
			secrets = append(secrets, store.MessageSecretInsert{
				Chat: types.JID{User: "120363000000000001", Server: types.GroupServer}, Sender: lid,
				ID: fmt.Sprintf("3EB0%08X", p), Secret: bytesOf(tag+"secret", 32)})
			tokens = append(tokens, store.PrivacyToken{User: lid, Token: bytesOf(tag+"token", 24),
				Timestamp: time.Unix(1_700_000_000+int64(p), 0)})
			_, _, e := s.PutPushName(ctx, pn, fmt.Sprintf("Push %d 😀", p))
			do("PutPushName", e)
			if p%5 == 0 {
				_, _, e = s.PutBusinessName(ctx, pn, fmt.Sprintf("Business %d", p))
				do("PutBusinessName", e)
			}
			group := types.JID{User: fmt.Sprintf("1203630000%08d", p), Server: types.GroupServer}
			do("PutSenderKey", s.PutSenderKey(ctx, group.String(), pn.SignalAddress().String(), bytesOf(tag+"sk", 150)))
			do("PutMutedUntil", s.PutMutedUntil(ctx, group, time.Unix(1_800_000_000+int64(p), 0)))
			do("PutPinned", s.PutPinned(ctx, pn, p%2 == 0))
			do("PutArchived", s.PutArchived(ctx, lid, true))
			do("AddOutgoingEvent", s.AddOutgoingEvent(ctx, group, fmt.Sprintf("3EB1%08X", p), "proto",
				bytesOf(tag+"outgoing", 200)))
			var hash [32]byte
			copy(hash[:], bytesOf(tag+"ciphertext"+fmt.Sprint(p), 32))
			var plaintext []byte
			if p%4 != 0 { // some events keep no plaintext
				plaintext = bytesOf(tag+"plaintext", 50+p)
			}
			do("PutBufferedEvent", s.PutBufferedEvent(ctx, hash, plaintext, time.Unix(1_700_000_000, 0)))
		}
		do("PutManySessions", s.PutManySessions(ctx, sessions))
		do("PutManyLIDMappings", container.LIDMap.PutManyLIDMappings(ctx, lidMappings))
		do("PutAllContactNames", s.PutAllContactNames(ctx, contacts))
		do("PutManyRedactedPhones", s.PutManyRedactedPhones(ctx, phones))
		do("PutMessageSecrets", s.PutMessageSecrets(ctx, secrets))
		do("PutPrivacyTokens", s.PutPrivacyTokens(ctx, tokens...))
		do("PutNCTSalt", s.PutNCTSalt(ctx, bytesOf(tag+"salt", 32)))
		keys, e := s.GetOrGenPreKeys(ctx, 50)
		do("GetOrGenPreKeys", e)
		if len(keys) > 0 {
			do("MarkPreKeysAsUploaded", s.MarkPreKeysAsUploaded(ctx, keys[24].KeyID))
		}
		for k := range 5 {
			do("PutAppStateSyncKey", s.PutAppStateSyncKey(ctx, bytesOf(tag+"syncid"+fmt.Sprint(k), 6),
				store.AppStateSyncKey{Data: bytesOf(tag+"sync", 64), Fingerprint: bytesOf(tag+"fp", 20),
					Timestamp: 1_700_000_000 + int64(k)}))
		}
		for c, name := range []string{"critical_block", "regular_high", "regular_low"} {
			var hash [128]byte
			copy(hash[:], bytesOf(tag+name, 128))
			do("PutAppStateVersion", s.PutAppStateVersion(ctx, name, uint64(10+c), hash))
			// More than one batch of upstream's 400-row mutation MAC insert.
			macs := make([]store.AppStateMutationMAC, 450)
			for m := range macs {
				macs[m] = store.AppStateMutationMAC{
					IndexMAC: bytesOf(fmt.Sprintf("%s%s%d", tag, name, m), 32), ValueMAC: bytesOf(tag+"value", 32)}
			}
			do("PutAppStateMutationMACs", s.PutAppStateMutationMACs(ctx, name, uint64(10+c), macs))
		}
	}
	return calls, err
}
