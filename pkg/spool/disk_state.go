package spool

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Files of a spool directory besides the segments.
const (
	lockFile  = "lock"     // flock'ed by the owning process; holds its pid
	idFile    = "spool_id" // the stream identity, written once
	stateFile = "state"    // ack point and highest seq, two slots overwritten in place
)

// The state file holds two fixed slots written alternately in place:
//
//	slot: magic u32 | crc u32 | gen u64 | acked u64 | last u64
//
// Overwriting existing blocks needs no free space on the filesystems we run
// on, so the highest sequence can still be recorded while the disk is full
// (the batches then live in memory): a restart never reuses a sequence the
// consumer may already hold. A slot torn by a crash fails its CRC and the
// other slot, one generation older, is used.
const (
	stateMagic   = 0x54_53_50_53 // "SPST"
	stateSlotLen = 32
)

type spoolState struct {
	gen, acked, last uint64
}

func (s spoolState) encode() []byte {
	b := make([]byte, stateSlotLen)
	binary.LittleEndian.PutUint32(b, stateMagic)
	binary.LittleEndian.PutUint64(b[8:], s.gen)
	binary.LittleEndian.PutUint64(b[16:], s.acked)
	binary.LittleEndian.PutUint64(b[24:], s.last)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

func decodeState(b []byte) (spoolState, bool) {
	if len(b) < stateSlotLen || binary.LittleEndian.Uint32(b) != stateMagic ||
		binary.LittleEndian.Uint32(b[4:]) != crc32.Checksum(b[8:stateSlotLen], castagnoli) {
		return spoolState{}, false
	}
	return spoolState{
		gen:   binary.LittleEndian.Uint64(b[8:]),
		acked: binary.LittleEndian.Uint64(b[16:]),
		last:  binary.LittleEndian.Uint64(b[24:]),
	}, true
}

// readState returns the newest valid slot of the state file (zero if none).
func readState(f *os.File) (spoolState, error) {
	buf := make([]byte, 2*stateSlotLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return spoolState{}, err
	}
	buf = buf[:n]
	var best spoolState
	for i := 0; i+stateSlotLen <= len(buf); i += stateSlotLen {
		if s, ok := decodeState(buf[i : i+stateSlotLen]); ok && s.gen >= best.gen {
			best = s
		}
	}
	return best, nil
}

// lockDir takes the spool's exclusive lock so that two producers never share
// one spool (they would interleave sequences of one stream identity).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool lock %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("spool %s is in use by another producer%s: give each producer its own PRODUCER_SPOOL_DIR", dir, holder)
		}
		return nil, fmt.Errorf("lock spool %s: %w", path, err)
	}
	// The pid is only for the error message above; failing to write it is harmless.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// loadOrCreateID reads the spool id, creating it when the spool is new. A
// spool whose id file is unreadable is an error rather than a fresh id: a
// new identity would make the consumer store the replayed batches again.
func loadOrCreateID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, herr := hex.DecodeString(id); herr != nil || len(id) != 32 {
			return "", fmt.Errorf("spool id %s is corrupt (%q): move the spool directory aside to start a new stream", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read spool id %s: %w", path, err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("spool id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("create spool id %s: %w", path, err)
	}
	return id, nil
}

// writeFileSync writes path atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
