package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/georep/georep/rpc/certs"
)

// certsCommand is `georep-slave certs`: it writes a CA (reused when the
// directory holds one), the slave's and a master's certificates with
// rpc/certs, and says where each file goes.
func certsCommand(args []string, out io.Writer) error {
	fs := pflag.NewFlagSet("georep-slave certs", pflag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write ca.crt, ca.key, slave.crt, slave.key, master.crt, master.key into (created 0700; an existing CA there is reused)")
	slaveNames := fs.StringSlice("slave-name", nil, "DNS names and IP addresses the master dials the slave by, comma-separated or repeated (the host of the master's slave key)")
	masterName := fs.String("master-name", "georep-master", "the master's identity: CN (and DNS or URI SAN) of its client certificate; list it in the slave's allowed-masters")
	statusNames := fs.StringSlice("status-name", nil, "also write status.crt/.key (the masters' status service, mutual TLS with georepctl) valid for these DNS names and IP addresses, and ctl.crt/.key for georepctl")
	ctlName := fs.String("ctl-name", "georepctl", "with --status-name: georepctl's identity (CN of ctl.crt); list it in the masters' status-allowed-clients")
	days := fs.Int("days", int(certs.DefaultValidity/(24*time.Hour)), "validity of the slave and master certificates in days (the CA gets twice as long)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: georep-slave certs --dir DIR --slave-name NAME[,NAME...] [--master-name NAME] [--status-name NAME[,NAME...] [--ctl-name NAME]] [--days N]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *dir == "":
		return fmt.Errorf("--dir is required")
	case len(*slaveNames) == 0:
		return fmt.Errorf("--slave-name is required: the DNS names or IP addresses the master dials")
	case *days < 1 || *days > 36500:
		return fmt.Errorf("--days %d is outside 1..36500", *days)
	}
	err := certs.Generate(*dir, certs.Options{
		SlaveNames:  *slaveNames,
		MasterName:  *masterName,
		StatusNames: *statusNames,
		CtlName:     *ctlName,
		Validity:    time.Duration(*days) * 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(*dir, name) }
	fmt.Fprintf(out, "wrote %s, %s (slave: %v), %s (master: %q)\n", p(certs.CAFile), p(certs.SlaveCertFile), *slaveNames, p(certs.MasterCertFile), *masterName)
	fmt.Fprintf(out, "slave:  --tls-cert %s --tls-key %s --tls-ca %s --allowed-masters %s\n", p(certs.SlaveCertFile), p(certs.SlaveKeyFile), p(certs.CAFile), *masterName)
	fmt.Fprintf(out, "master: --tls-cert %s --tls-key %s --tls-ca %s\n", p(certs.MasterCertFile), p(certs.MasterKeyFile), p(certs.CAFile))
	if len(*statusNames) > 0 {
		fmt.Fprintf(out, "master status-listen: --status-tls-cert %s --status-tls-key %s --status-tls-ca %s --status-allowed-clients %s\n",
			p(certs.StatusCertFile), p(certs.StatusKeyFile), p(certs.CAFile), *ctlName)
		fmt.Fprintf(out, "georepctl: --tls-cert %s --tls-key %s --tls-ca %s\n", p(certs.CtlCertFile), p(certs.CtlKeyFile), p(certs.CAFile))
	}
	fmt.Fprintf(out, "keep %s on neither host\n", p(certs.CAKeyFile))
	return nil
}
