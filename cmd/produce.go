package cmd

import "github.com/spf13/cobra"

func newProduceCmd() *cobra.Command {
	return &cobra.Command{Use: "produce", Short: "not yet wired"}
}
