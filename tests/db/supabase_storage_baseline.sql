-- The part of Supabase Storage's own schema that supabase/migrations rely on, reproduced for
-- tests. Taken from supabase/storage `migrations/tenant/` (commit 4fa61fba), as a project
-- has it once every migration ran, keeping only what the storage policies touch:
--
--   0002-storage-schema.sql        schema `storage`, its grants and default privileges to the
--                                  API roles, storage.buckets, storage.objects (RLS enabled),
--                                  storage.foldername() / filename() / extension()
--   0007-add-rls-to-buckets.sql    RLS on storage.buckets
--   0008-add-public-to-buckets.sql buckets.public
--   0013/0014 (custom limits)      buckets.file_size_limit (bigint, bytes), allowed_mime_types
--   0016-add-version.sql           objects.version
--   0018-add_owner_id_...sql       objects.owner_id, buckets.owner_id (text; `owner` deprecated)
--   0025-custom-metadata.sql       objects.user_metadata
--   0046/0049 (grants)             all on buckets and objects to anon, authenticated,
--                                  service_role, and postgres with grant option
--   0055-prevent-direct-deletes    the statement trigger refusing DELETE unless the Storage
--                                  API set `storage.allow_delete_query`
--   0060/0061                      foldername/filename/extension marked IMMUTABLE
--
-- Left out: storage.migrations, search functions, prefixes, S3 multipart tables, vector and
-- analytics buckets, versioning columns, the `supabase_storage_admin` owner (the cluster's
-- superuser owns everything here, as `postgres` owns the rest of the baseline).

create schema storage;
grant usage on schema storage to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on sequences to postgres, anon, authenticated, service_role;

create table storage.buckets (
  id text not null primary key,
  name text not null,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  file_size_limit bigint default null,
  allowed_mime_types text[] default null,
  owner_id text default null
);
create unique index bname on storage.buckets using btree (name);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';

create table storage.objects (
  id uuid not null default gen_random_uuid() primary key,
  bucket_id text,
  name text,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  version text default null,
  owner_id text default null,
  user_metadata jsonb null,
  constraint "objects_bucketId_fkey" foreign key (bucket_id) references storage.buckets (id)
);
create unique index bucketid_objname on storage.objects using btree (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';

alter table storage.objects enable row level security;
alter table storage.buckets enable row level security;

grant all on storage.buckets, storage.objects to postgres with grant option;
grant all on storage.buckets, storage.objects to service_role, authenticated, anon;

create or replace function storage.foldername(name text)
  returns text[]
  language plpgsql
  immutable
as $function$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1 : array_length(_parts, 1) - 1];
end
$function$;

create or replace function storage.filename(name text)
  returns text
  language plpgsql
  immutable
as $function$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$function$;

create or replace function storage.extension(name text)
  returns text
  language plpgsql
  immutable
as $function$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$function$;

create or replace function storage.protect_delete()
returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end;
$$;

create trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement
  execute function storage.protect_delete();

create trigger protect_objects_delete
  before delete on storage.objects
  for each statement
  execute function storage.protect_delete();
