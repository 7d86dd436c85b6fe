-- Demo data for local development, loaded by `supabase db reset` / `supabase start` after the
-- migrations. After start-up, `GET /api/items` shows these items to anyone, and the demo user can
-- sign in with demo@supagate.local / supagate-demo.

-- A confirmed email/password user, written the way Supabase Auth stores one: the token columns
-- must be '' rather than NULL for Auth to read the row, and email sign-in needs an identity.
-- The profile is created by the on_auth_user_created trigger.
insert into auth.users (
  instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
  raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
  confirmation_token, recovery_token, email_change_token_new, email_change
) values (
  '00000000-0000-0000-0000-000000000000',
  'd0d0d0d0-0000-4000-8000-000000000001',
  'authenticated',
  'authenticated',
  'demo@supagate.local',
  extensions.crypt('supagate-demo', extensions.gen_salt('bf')),
  now(),
  '{"provider": "email", "providers": ["email"]}',
  '{"full_name": "Demo User"}',
  now(),
  now(),
  '', '', '', ''
);

insert into auth.identities (
  id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
) values (
  'd0d0d0d0-0000-4000-8000-0000000000a1',
  'd0d0d0d0-0000-4000-8000-000000000001',
  'd0d0d0d0-0000-4000-8000-000000000001',
  '{"sub": "d0d0d0d0-0000-4000-8000-000000000001", "email": "demo@supagate.local", "email_verified": true}',
  'email',
  now(),
  now(),
  now()
);

update public.profiles
   set username = 'demo'
 where id = 'd0d0d0d0-0000-4000-8000-000000000001';

insert into public.categories (id, name, slug) values
  ('c0c0c0c0-0000-4000-8000-000000000001', 'Kitchen', 'kitchen'),
  ('c0c0c0c0-0000-4000-8000-000000000002', 'Garden', 'garden'),
  ('c0c0c0c0-0000-4000-8000-000000000003', 'Books', 'books');

-- Staggered created_at so the default order (created_at desc) is visible.
insert into public.items (name, description, price, category_id, user_id, created_at) values
  ('Enamel mug', 'Holds 350 ml; survives camping.', 12.50,
   'c0c0c0c0-0000-4000-8000-000000000001', 'd0d0d0d0-0000-4000-8000-000000000001', now() - interval '5 days'),
  ('Chef''s knife', '20 cm carbon steel.', 89.00,
   'c0c0c0c0-0000-4000-8000-000000000001', 'd0d0d0d0-0000-4000-8000-000000000001', now() - interval '4 days'),
  ('Watering can', 'Galvanised, 10 litres.', 34.90,
   'c0c0c0c0-0000-4000-8000-000000000002', 'd0d0d0d0-0000-4000-8000-000000000001', now() - interval '3 days'),
  ('Pruning shears', null, 24.00,
   'c0c0c0c0-0000-4000-8000-000000000002', 'd0d0d0d0-0000-4000-8000-000000000001', now() - interval '2 days'),
  ('The Rust Programming Language', 'Second edition, paperback.', 39.95,
   'c0c0c0c0-0000-4000-8000-000000000003', 'd0d0d0d0-0000-4000-8000-000000000001', now() - interval '1 day'),
  ('Uncategorised curiosity', 'No category, to show `category: null`.', 1.00,
   null, 'd0d0d0d0-0000-4000-8000-000000000001', now());
