//! Catalogue and stock questions: one catalogue call per product kind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Cart;

use crate::error::CartError;
use crate::product::{Product, ProductRef};

impl Cart {
    /// Asks the inventory checker (if one is configured) whether `quantity` units of the
    /// product can be in the cart. `product` is the app's own product when the caller has it
    /// (the checker may downcast it); otherwise the catalogue's is looked up, and failing
    /// that the reference itself is asked about.
    pub(super) async fn check_stock(
        &self,
        pref: &ProductRef,
        product: Option<&dyn Product>,
        quantity: i64,
    ) -> Result<(), CartError> {
        let Some(inventory) = self.config().inventory.clone() else {
            return Ok(());
        };
        let looked_up = match product {
            Some(_) => None,
            None => self
                .catalog_products(std::slice::from_ref(pref))
                .await?
                .pop()
                .flatten(),
        };
        let product: &dyn Product = match (product, &looked_up) {
            (Some(p), _) => p,
            (None, Some(p)) => p.as_ref(),
            (None, None) => pref,
        };
        let ok = inventory
            .check(product, quantity)
            .await
            .map_err(|e| CartError::plugin("inventory checker", e))?;
        if ok {
            Ok(())
        } else {
            Err(CartError::InsufficientStock {
                product: pref.clone(),
                quantity,
            })
        }
    }

    /// The stock check of several lines at their resulting quantities, with the catalogue's
    /// products: `products` when the caller has loaded them (in the order of `wanted`), else
    /// loaded here (one catalogue call per kind).
    pub(super) async fn check_stock_of(
        &self,
        wanted: &[(ProductRef, i64)],
        products: Option<&[Option<Arc<dyn Product>>]>,
    ) -> Result<(), CartError> {
        let Some(inventory) = self.config().inventory.clone() else {
            return Ok(());
        };
        let loaded;
        let products = match products {
            Some(p) => p,
            None => {
                let refs: Vec<ProductRef> = wanted.iter().map(|(p, _)| p.clone()).collect();
                loaded = self.catalog_products(&refs).await?;
                &loaded
            }
        };
        for ((pref, quantity), product) in wanted.iter().zip(products) {
            let asked: &dyn Product = match &product {
                Some(p) => p.as_ref(),
                None => pref,
            };
            let ok = inventory
                .check(asked, *quantity)
                .await
                .map_err(|e| CartError::plugin("inventory checker", e))?;
            if !ok {
                return Err(CartError::InsufficientStock {
                    product: pref.clone(),
                    quantity: *quantity,
                });
            }
        }
        Ok(())
    }

    /// The catalogue's product for each reference (matched by kind and id), one catalogue
    /// call per kind; `None` where the catalogue has none (or there is no catalogue).
    pub(super) async fn catalog_products(
        &self,
        refs: &[ProductRef],
    ) -> Result<Vec<Option<Arc<dyn Product>>>, CartError> {
        let Some(catalog) = self.config().catalog.clone() else {
            return Ok(refs.iter().map(|_| None).collect());
        };
        let mut by_kind: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for r in refs {
            by_kind.entry(r.kind()).or_default().push(r.id());
        }
        let mut found: HashMap<(String, i64), Arc<dyn Product>> = HashMap::new();
        for (kind, ids) in by_kind {
            let products = catalog
                .products(kind, &ids)
                .await
                .map_err(|e| CartError::plugin("catalogue", e))?;
            for p in products {
                found.insert((p.kind().to_owned(), p.id()), p);
            }
        }
        Ok(refs
            .iter()
            .map(|r| found.get(&(r.kind().to_owned(), r.id())).cloned())
            .collect())
    }
}
