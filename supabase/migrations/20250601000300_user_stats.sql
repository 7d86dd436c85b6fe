-- get_user_stats(user_id): figures behind GET /api/users/{id}/stats.
--
-- SECURITY INVOKER, deliberately. The function reads only public.items, which every role may
-- already read through RLS, so definer rights would grant nothing the caller lacks, while a
-- SECURITY DEFINER function in an exposed schema runs as its (RLS-bypassing) owner and becomes a
-- hole the day items stop being public. As invoker, RLS stays the single source of truth and
-- the stats can never show a row the caller could not list.
--
-- "Self or admin" is enforced here too, as a second line behind the gateway: a signed-in user
-- asking for someone else's stats gets 42501 (PostgREST answers 403) unless app_metadata.role
-- is admin. The service role and database owners are not restricted.
--
-- The parameter is named `user_id` because PostgREST maps the JSON body key to it
-- (`POST /rest/v1/rpc/get_user_stats {"user_id": "..."}`); inside, it is always written
-- `get_user_stats.user_id` so it cannot be confused with items.user_id.
create or replace function public.get_user_stats(user_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  stats jsonb;
begin
  if current_user = 'authenticated'
     and get_user_stats.user_id is distinct from (select auth.uid())
     and coalesce((select auth.jwt() -> 'app_metadata' ->> 'role'), '') <> 'admin' then
    raise exception 'cannot read another user''s stats'
      using errcode = 'insufficient_privilege';
  end if;

  -- One aggregate row even when the user has no items: count 0, sum/avg/max null.
  -- Served by items_user_id_created_at_id_idx.
  select jsonb_build_object(
           'item_count', count(*),
           'total_value', coalesce(sum(i.price), 0),
           'avg_price', round(avg(i.price), 2),
           'last_item_at', max(i.created_at)
         )
    into stats
    from public.items i
   where i.user_id = get_user_stats.user_id;

  return stats;
end;
$$;

comment on function public.get_user_stats(uuid) is
  'Item statistics of one user: {item_count, total_value, avg_price, last_item_at}. '
  'SECURITY INVOKER (RLS applies); a signed-in caller may ask for themselves unless admin.';

-- Signed-in users and the service role only. Supabase's default privileges grant EXECUTE to
-- anon explicitly, hence the revoke from anon as well as PUBLIC.
revoke execute on function public.get_user_stats(uuid) from public, anon;
grant execute on function public.get_user_stats(uuid) to authenticated, service_role;
