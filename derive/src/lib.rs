//! `#[derive(FromBody)]` and `#[derive(FromParams)]`: supagate's request input read field by
//! field from the field's type (`T` required, `Option<T>` optional, `Change<T>` a PATCH
//! field), so every problem is reported at once and no field name is written twice.
//!
//! The generated code names `crate::api::input`, so the derives are for supagate's own crate.
//!
//! Field attributes (`#[input(...)]`):
//! - `rename = "wire"`: the JSON or query name, when it is not the field's own;
//! - `not_null` (bodies, on an `Option<T>`): may be absent, but `null` is a problem;
//! - `default` (query strings, on a `T: Default`): absent means `T::default()`;
//! - `flatten` (query strings): the field is itself `FromParams` (a shared `Page`, say).
//!
//! Struct attribute: `#[input(check = path)]` runs `path(&Self) -> Result<(), Across>` once
//! every field has parsed, for a rule across fields (as zod's `refine` runs after the shape).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::ext::IdentExt;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitStr, Path};

#[proc_macro_derive(FromBody, attributes(input))]
pub fn derive_from_body(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Kind::Body)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[proc_macro_derive(FromParams, attributes(input))]
pub fn derive_from_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Kind::Params)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Body,
    Params,
}

#[derive(Default)]
struct FieldOptions {
    rename: Option<LitStr>,
    not_null: bool,
    default: bool,
    flatten: bool,
}

fn field_options(field: &syn::Field, kind: Kind) -> syn::Result<FieldOptions> {
    let mut options = FieldOptions::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("input")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                options.rename = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("not_null") && kind == Kind::Body {
                options.not_null = true;
            } else if meta.path.is_ident("default") && kind == Kind::Params {
                options.default = true;
            } else if meta.path.is_ident("flatten") && kind == Kind::Params {
                options.flatten = true;
            } else {
                let allowed = match kind {
                    Kind::Body => "`rename` or `not_null`",
                    Kind::Params => "`rename`, `default` or `flatten`",
                };
                return Err(meta.error(format!("unknown input option; expected {allowed}")));
            }
            Ok(())
        })?;
    }
    Ok(options)
}

fn check_path(input: &DeriveInput) -> syn::Result<Option<Path>> {
    let mut check = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("input")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("check") {
                check = Some(meta.value()?.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown input option; expected `check = path`"))
            }
        })?;
    }
    Ok(check)
}

fn expand(input: &DeriveInput, kind: Kind) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "input is derived for structs with named fields",
        ));
    };
    let fields: Vec<&syn::Field> = match &data.fields {
        Fields::Named(named) => named.named.iter().collect(),
        Fields::Unit => Vec::new(),
        Fields::Unnamed(_) => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "input is derived for structs with named fields",
            ))
        }
    };
    let (the_trait, method, reader, field_trait) = match kind {
        Kind::Body => (
            quote!(crate::api::input::FromBody),
            quote!(from_body),
            quote!(crate::api::input::JsonFields),
            quote!(crate::api::input::BodyField),
        ),
        Kind::Params => (
            quote!(crate::api::input::FromParams),
            quote!(from_params),
            quote!(crate::api::input::QueryFields),
            quote!(crate::api::input::ParamField),
        ),
    };
    let mut reads = Vec::new();
    let mut inits = Vec::new();
    for field in fields {
        let Some(ident) = &field.ident else { continue };
        let ty = &field.ty;
        let options = field_options(field, kind)?;
        let wire = options
            .rename
            .clone()
            .unwrap_or_else(|| LitStr::new(&ident.unraw().to_string(), ident.span()));
        let read = if options.flatten {
            quote!(<#ty as #the_trait>::#method(__input))
        } else if options.not_null {
            quote!(__input.change_non_null(#wire))
        } else if options.default {
            quote!(<::core::option::Option<#ty> as #field_trait>::take(__input, #wire)
                .map(::core::option::Option::unwrap_or_default))
        } else {
            quote!(<#ty as #field_trait>::take(__input, #wire))
        };
        // Each field is read before any `?`, so one failure does not hide the next. The
        // reader and the value have names no field can take (proc-macro locals are unhygienic).
        reads.push(quote!(let #ident = #read;));
        inits.push(quote!(#ident: #ident?));
    }
    let check = check_path(input)?.map(|path| {
        quote! {
            if let ::core::result::Result::Err(problem) = #path(&__value) {
                __input.across(problem);
            }
        }
    });
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #the_trait for #name #type_generics #where_clause {
            fn #method(__input: &mut #reader) -> ::core::option::Option<Self> {
                #(#reads)*
                let __value = Self { #(#inits),* };
                #check
                ::core::option::Option::Some(__value)
            }
        }
    })
}
