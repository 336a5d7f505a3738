package main

import (
	"context"
	"errors"
	"io"
)

func runNormalize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("normalize: not written yet")
}
