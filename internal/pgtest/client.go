package pgtest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Connect connects to database db over the Unix socket as User.
func (s *Server) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.SocketURL(db))
}

// Exec runs sql in database db as User.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := s.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// Ready reports whether the server answers a query.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.Exec(ctx, "postgres", "SELECT 1")
}
