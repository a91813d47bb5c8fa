-- Whether a connection's plugin may reach private, loopback and link-local addresses (a
-- supplier on the shop's own network). Off by default: plugins cannot reach internal services.
alter table connections add column allow_private_network bigint not null default 0;
