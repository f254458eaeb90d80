package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// nodeFileName records which node the spool's batches belong to: a stream is
// node + spool id, and batches sampled on one node must never be replayed
// under another's name.
const nodeFileName = "node"

// BindNode ties the spool to node. A spool holding unsent batches of another
// node is refused (its data would be stored under the wrong name); an empty
// spool is rebound. Call it after OpenDisk, before the first Append.
func (d *Disk) BindNode(node string) error {
	path := filepath.Join(d.dir, nodeFileName)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		prev := strings.TrimSpace(string(data))
		if prev == node {
			return nil
		}
		if n := d.Stats().Records; n > 0 {
			return fmt.Errorf("spool %s holds %d unsent batches of node %q, not %q: run that node's producer until they are sent, give this one its own PRODUCER_SPOOL_DIR, or remove the directory to discard them", d.dir, n, prev, node)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read spool node: %w", err)
	}
	if err := writeFileSync(path, []byte(node+"\n")); err != nil {
		return fmt.Errorf("record spool node %s: %w", path, err)
	}
	return nil
}
