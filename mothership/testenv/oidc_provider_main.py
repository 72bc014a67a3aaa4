"""The Go main of the tests' OpenID Connect provider.

Dex and kubelogin are not served by the module proxy this project builds from; zitadel's
OIDC library is, and its module holds a complete provider (in-memory users, the device
authorization and code flows, an HTML login form). Its own main serves plain http with a
fixed issuer and users without groups; the Kubernetes API server trusts only an https
issuer, and tenant RBAC is written against groups. This main reuses the provider's
packages and adds what the tests need: TLS with a certificate of ours, the issuer and
clients from a config file, `groups` and `email` claims in the ID token, and per client the
refresh grant and the ID tokens' lifetime (the library's device client has neither). A client
with redirect URIs is the library's native client instead: the authorization-code flow with
PKCE and no secret, any port on a loopback redirect (RFC 8252), as kubectl's browser login
uses it.
"""

from __future__ import annotations

MODULE = "github.com/zitadel/oidc/v3"
VERSION_VAR = "main.version"

MAIN = """\
// Command oidc-provider is zitadel/oidc's example OpenID provider with an https issuer,
// users and clients from a JSON config, and groups in the ID token. Written by mothership
// (mothership/testenv/oidc_provider_main.py); do not edit.
package main

import (
\t"context"
\t"encoding/json"
\t"flag"
\t"fmt"
\t"log/slog"
\t"net/http"
\t"os"
\t"slices"
\t"time"

\t"github.com/zitadel/oidc/v3/example/server/exampleop"
\t"github.com/zitadel/oidc/v3/example/server/storage"
\t"github.com/zitadel/oidc/v3/pkg/oidc"
\t"github.com/zitadel/oidc/v3/pkg/op"
)

var version = "unknown"

type account struct {
\tID       string   `json:"id"`
\tUsername string   `json:"username"`
\tPassword string   `json:"password"`
\tEmail    string   `json:"email"`
\tGroups   []string `json:"groups"`
}

type client struct {
\tID     string `json:"id"`
\tSecret string `json:"secret"`
\t// Refresh allows the refresh grant (refresh tokens are given for scope offline_access).
\tRefresh bool `json:"refresh"`
\t// IDTokenSeconds is the ID tokens' lifetime; 0 keeps the library's hour.
\tIDTokenSeconds int `json:"idTokenSeconds"`
\t// RedirectURIs make the client a native one (code flow with PKCE) instead of a device one.
\tRedirectURIs []string `json:"redirectURIs"`
}

// tunedClient is a registered client with the grant types and token lifetime of the config.
type tunedClient struct {
\top.Client
\tcfg client
}

func (c tunedClient) GrantTypes() []oidc.GrantType {
\tgrants := c.Client.GrantTypes()
\tif c.cfg.Refresh && !slices.Contains(grants, oidc.GrantTypeRefreshToken) {
\t\tgrants = append(append([]oidc.GrantType{}, grants...), oidc.GrantTypeRefreshToken)
\t}
\treturn grants
}

func (c tunedClient) IDTokenLifetime() time.Duration {
\tif c.cfg.IDTokenSeconds > 0 {
\t\treturn time.Duration(c.cfg.IDTokenSeconds) * time.Second
\t}
\treturn c.Client.IDTokenLifetime()
}

type config struct {
\tIssuer  string    `json:"issuer"`
\tListen  string    `json:"listen"`
\tCert    string    `json:"cert"`
\tKey     string    `json:"key"`
\tClients []client  `json:"clients"`
\tUsers   []account `json:"users"`
}

// users is the provider's user store, read from the config instead of its fixed list.
type users struct {
\tbyID   map[string]*storage.User
\tbyName map[string]*storage.User
\tgroups map[string][]string
}

func (u users) GetUserByID(id string) *storage.User         { return u.byID[id] }
func (u users) GetUserByUsername(name string) *storage.User { return u.byName[name] }
func (u users) ExampleClientID() string                     { return "service" }

// withGroups adds the claims the API server maps (email, preferred_username, groups) to
// every ID token, whatever scopes the client asked for.
type withGroups struct {
\t*storage.Storage
\tusers   users
\tclients map[string]client
}

// CreateAccessAndRefreshTokens names the client of a device login in its refresh token: the
// library's storage reads the client of code-flow requests only, so a refresh token from a
// device login named none and every refresh was refused (invalid_grant).
func (s *withGroups) CreateAccessAndRefreshTokens(
\tctx context.Context, req op.TokenRequest, current string,
) (string, string, time.Time, error) {
\tif device, ok := req.(*op.DeviceAuthorizationState); ok && current == "" {
\t\treq = &storage.AuthRequest{
\t\t\tApplicationID: device.ClientID, UserID: device.Subject, Scopes: device.Scopes,
\t\t}
\t}
\treturn s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
}

// GetClientByClientID hands the provider the registered client as the config tunes it.
func (s *withGroups) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
\tfound, err := s.Storage.GetClientByClientID(ctx, id)
\tif err != nil {
\t\treturn nil, err
\t}
\tif cfg, ok := s.clients[id]; ok {
\t\treturn tunedClient{found, cfg}, nil
\t}
\treturn found, nil
}

func (s *withGroups) SetUserinfoFromRequest(
\tctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string,
) error {
\tif err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
\t\treturn err
\t}
\tuser := s.users.GetUserByID(req.GetSubject())
\tif user == nil {
\t\treturn fmt.Errorf("user %q not found", req.GetSubject())
\t}
\tinfo.Email = user.Email
\tinfo.EmailVerified = oidc.Bool(true)
\tinfo.PreferredUsername = user.Username
\tinfo.AppendClaims("groups", s.users.groups[user.ID])
\treturn nil
}

func load(path string) (config, users, error) {
\tvar cfg config
\tdata, err := os.ReadFile(path)
\tif err != nil {
\t\treturn cfg, users{}, err
\t}
\tif err := json.Unmarshal(data, &cfg); err != nil {
\t\treturn cfg, users{}, fmt.Errorf("%s: %w", path, err)
\t}
\tu := users{map[string]*storage.User{}, map[string]*storage.User{}, map[string][]string{}}
\tfor _, a := range cfg.Users {
\t\tuser := &storage.User{
\t\t\tID: a.ID, Username: a.Username, Password: a.Password, Email: a.Email,
\t\t\tEmailVerified: true, FirstName: a.Username, LastName: a.Username,
\t\t}
\t\tu.byID[a.ID] = user
\t\tu.byName[a.Username] = user
\t\tu.groups[a.ID] = a.Groups
\t}
\treturn cfg, u, nil
}

func main() {
\tconfigPath := flag.String("config", "", "JSON config: issuer, listen, cert, key, clients, users")
\tshowVersion := flag.Bool("version", false, "print the version and exit")
\tflag.Parse()
\tif *showVersion {
\t\tfmt.Printf("oidc-provider (zitadel/oidc %s)\\n", version)
\t\treturn
\t}
\tlogger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
\tcfg, u, err := load(*configPath)
\tif err != nil {
\t\tlogger.Error("cannot read the config", "error", err)
\t\tos.Exit(2)
\t}
\tclients := map[string]client{}
\tfor _, c := range cfg.Clients {
\t\tif len(c.RedirectURIs) > 0 {
\t\t\tstorage.RegisterClients(storage.NativeClient(c.ID, c.RedirectURIs...))
\t\t} else {
\t\t\tstorage.RegisterClients(storage.DeviceClient(c.ID, c.Secret))
\t\t}
\t\tclients[c.ID] = c
\t}
\tstore := &withGroups{Storage: storage.NewStorage(u), users: u, clients: clients}
\trouter := exampleop.SetupServer(cfg.Issuer, store, logger, false)
\tserver := &http.Server{Addr: cfg.Listen, Handler: router}
\tlogger.Info("serving", "issuer", cfg.Issuer, "listen", cfg.Listen)
\tif err := server.ListenAndServeTLS(cfg.Cert, cfg.Key); err != http.ErrServerClosed {
\t\tlogger.Error("server stopped", "error", err)
\t\tos.Exit(1)
\t}
}
"""


def main_source() -> str:
    return MAIN
