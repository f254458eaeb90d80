package spool

import (
	"strings"
	"testing"
)

func TestBindNode(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir, DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.BindNode("web1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Append(d.LastSeq()+1, []byte("batch")); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d, err = OpenDisk(dir, DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.BindNode("web1"); err != nil {
		t.Errorf("same node refused: %v", err)
	}
	if err := d.BindNode("web2"); err == nil || !strings.Contains(err.Error(), `unsent batches of node "web1"`) {
		t.Errorf("another node over unsent batches: %v", err)
	}
	if err := d.Ack(d.LastSeq()); err != nil {
		t.Fatal(err)
	}
	if err := d.BindNode("web2"); err != nil {
		t.Errorf("an empty spool should be rebound: %v", err)
	}
}
