package share

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nkeys"
	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
)

// runKeygen writes a new NKey user seed to a file that must not exist yet
// and prints the public key, which goes in the server's configuration.
func runKeygen(c *cli.Context) error {
	if c.NArg() != 1 {
		return command.UsageErrorf("keygen: want one FILE")
	}
	path := c.Args().First()
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	defer clear(seed)
	pub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return exitcode.Errorf(exitcode.Config, "keygen: %s exists: not overwritten", path)
	}
	if err != nil {
		return exitcode.Errorf(exitcode.Config, "keygen: %v", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, pub)
	return err
}
