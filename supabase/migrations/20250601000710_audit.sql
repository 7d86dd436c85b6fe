-- The audit log: one row per written row of the app's tables, written by a trigger in the
-- write's own transaction (a rolled-back write leaves none). It records who (from the claims
-- PostgREST verified), what (table, row id, operation, the names of the changed columns, never
-- their values) and the request id supagate sent upstream (PostgREST exposes the request's
-- headers as `request.headers`). Admins read it; nobody writes it but the trigger.

create table public.audit_log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  user_id uuid,
  role text not null,
  is_anonymous boolean not null default false,
  table_name text not null,
  row_id text,
  operation text not null
    constraint audit_log_operation check (operation in ('INSERT', 'UPDATE', 'DELETE')),
  changed_columns text[] not null default '{}',
  request_id text
);

comment on table public.audit_log is
  'Who changed which row of the app''s tables, when, through which request; admins only.';

-- GET /api/admin/audit pages newest first by id, filtered by user, table or time.
create index audit_log_user_id_id_idx on public.audit_log (user_id, id);
create index audit_log_table_name_id_idx on public.audit_log (table_name, id);
create index audit_log_occurred_at_idx on public.audit_log (occurred_at);

alter table public.audit_log enable row level security;

create policy audit_log_select_admin on public.audit_log
  for select to authenticated
  using ((select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');

-- Read only, even for the service role: rows come from the trigger, which runs as the owner.
revoke all on table public.audit_log from public, anon, authenticated, service_role;
grant select on table public.audit_log to authenticated, service_role;

create or replace function private.audit_row()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
  before_row jsonb;
  after_row jsonb;
  changed text[];
  sub text := claims ->> 'sub';
begin
  if tg_op in ('UPDATE', 'DELETE') then
    before_row := to_jsonb(old);
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    after_row := to_jsonb(new);
  end if;
  select coalesce(array_agg(a.key order by a.key), '{}')
    into changed
    from jsonb_each(coalesce(after_row, '{}'::jsonb)) a
   where case tg_op
           when 'INSERT' then a.value <> 'null'::jsonb
           else a.value is distinct from before_row -> a.key
         end;
  insert into public.audit_log (
    user_id, role, is_anonymous, table_name, row_id, operation, changed_columns, request_id
  )
  values (
    case when sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         then sub::uuid end,
    coalesce(claims ->> 'role', nullif(current_setting('role', true), 'none'), session_user::text),
    coalesce((claims ->> 'is_anonymous')::boolean, false),
    tg_table_name,
    coalesce(after_row, before_row) ->> coalesce(tg_argv[0], 'id'),
    tg_op,
    changed,
    left(headers ->> 'x-request-id', 128)
  );
  return null;
end;
$$;

comment on function private.audit_row() is
  'AFTER row trigger: appends the write to public.audit_log (argument: the row id column, default id).';

revoke all on function private.audit_row() from public, anon, authenticated;

create trigger items_audit
  after insert or update or delete on public.items
  for each row execute function private.audit_row();
create trigger categories_audit
  after insert or update or delete on public.categories
  for each row execute function private.audit_row();
create trigger profiles_audit
  after insert or update or delete on public.profiles
  for each row execute function private.audit_row();
create trigger customers_audit
  after insert or update or delete on public.customers
  for each row execute function private.audit_row('user_id');
create trigger subscriptions_audit
  after insert or update or delete on public.subscriptions
  for each row execute function private.audit_row();
create trigger payments_audit
  after insert or update or delete on public.payments
  for each row execute function private.audit_row();
