package doctor_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/doctor"
)

func TestReportFormat(t *testing.T) {
	r := &doctor.Report{File: "x.env", Role: config.RoleProducer, Results: []doctor.Result{
		{Status: doctor.Pass, Key: "PRODUCER_IP", Msg: "consumer reachable", Fix: "ignored for a pass"},
		{Status: doctor.Warn, Msg: "something odd\nacross lines", Fix: "look"},
		{Status: doctor.Fail, Key: "PRODUCER_PORT", Msg: `"x" is not a number`, Fix: "use 1 to 65535"},
	}}
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "checking x.env (producer)\n" +
		"  ✓ PRODUCER_IP: consumer reachable\n" +
		"  ! something odd across lines — fix: look\n" +
		"  ✗ PRODUCER_PORT: \"x\" is not a number — fix: use 1 to 65535\n" +
		"3 checks: 1 passed, 1 warnings, 1 failed\n"
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	var fe *doctor.FailedError
	if err := r.Err(); !errors.As(err, &fe) || fe.Failed != 1 || fe.First.Key != "PRODUCER_PORT" || err.Error() != "x.env: 1 of 3 checks failed" {
		t.Errorf("Err = %v", err)
	}
}

func TestEnvironmentOverridesWarn(t *testing.T) {
	path := writeEnv(t, map[string]string{"PRODUCER_USE_TLS": "false", "PRODUCER_PORT": "1", "PRODUCER_SPOOL_DIR": t.TempDir()})
	env := map[string]string{"PRODUCER_PORT": "2", "PRODUCER_NODE": "n"}
	r := doctor.Check(context.Background(), path, doctor.Options{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, Timeout: 1})
	mustFind(t, r, doctor.Warn, "PRODUCER_PORT", "overrides this file")
	mustFind(t, r, doctor.Warn, "PRODUCER_NODE", "adds to this file")
}
